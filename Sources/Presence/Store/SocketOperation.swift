/// One step of ``PresenceScripts/events``: a socket record or a user entry to change.
struct SocketOperation: Sendable {
    enum Code: String, Sendable {
        case connect = "c"
        /// ``connect``, then ``userAdd`` of its user entry unless superseded (one server, where
        /// the call reaches both keys).
        case connectAdding = "C"
        case disconnect = "d"
        /// A disconnect whose caller needs no record back (it knows the user): answers 1, not the record.
        case erase = "D"
        /// ``disconnect`` and ``erase``, then the socket leaves its node's set in the same call
        /// (one server, where the call reaches the set; the socket's last event of a batch).
        case disconnectUnlisting = "x"
        case eraseUnlisting = "X"
        /// ``eraseUnlisting``, then ``userRemove`` of the socket's user entry (one server, where
        /// the call reaches both keys).
        case eraseUnlistingRemoving = "R"
        case userAdd = "a"
        case userRefresh = "f"
        case userRemove = "r"

        /// Whether the operation changes a user entry (a failure of one fails the whole batch).
        var changesUserEntry: Bool {
            switch self {
            case .userAdd, .userRemove, .connectAdding, .eraseUnlistingRemoving: true
            case .connect, .disconnect, .erase, .disconnectUnlisting, .eraseUnlisting, .userRefresh: false
            }
        }
    }

    var code: Code
    /// The one key the operation touches.
    var key: String
    /// Connect: the record's value; user operations: the field `socket␟incarnation`; `R`: the user key.
    var a = ""
    /// User add: the record key of its connect; `C`: the user key; `R`: the field `socket␟incarnation`.
    var b = ""
    /// User add: its connect's connectedAt µs (recorded with `socket.connected`); `C`: the field.
    var c = ""
    /// `C`: its connectedAt µs, sent only in a call that records changes (`recording`).
    var d = ""

    /// Appends the code, the key and the arguments this code takes (user add 3, `C` 3, or 4 in
    /// a call that records changes (`recording`), `R` 2, disconnect none, connect and the other
    /// user operations 1): the script reads them by code.
    func append(to command: inout RedisCommand, recording: Bool) {
        command.append(code.rawValue)
        command.append(key)
        switch code {
        case .connect: command.append(a)
        case .userAdd: command.append(contentsOf: [a, b, c])
        case .eraseUnlistingRemoving: command.append(contentsOf: [a, b])
        case .connectAdding:
            command.append(contentsOf: [a, b, c])
            if recording { command.append(d) }
        case .disconnect, .erase, .disconnectUnlisting, .eraseUnlisting: break
        case .userRefresh, .userRemove: command.append(a)
        }
    }
}
