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
}
