/// One step of ``PresenceScripts/events``: a socket record or a user entry to change.
struct SocketOperation: Sendable {
    enum Code: String, Sendable {
        case connect = "c"
        case disconnect = "d"
        case userAdd = "a"
        case userRefresh = "f"
        case userRemove = "r"
    }

    var code: Code
    /// The one key the operation touches.
    var key: String
    var a = ""
    var b = ""
    var c = ""

    /// Appends the code, the key and the arguments this code takes (connect 3, disconnect none,
    /// user add 2, the other user operations 1): the script reads them by code.
    func append(to command: inout RedisCommand) {
        command.append(code.rawValue)
        command.append(key)
        switch code {
        case .connect: command.append(contentsOf: [a, b, c])
        case .disconnect: break
        case .userAdd: command.append(contentsOf: [a, b])
        case .userRefresh, .userRemove: command.append(a)
        }
    }
}
