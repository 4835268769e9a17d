import Synchronization

/// Whether a server refused one of the writer's native commands (an ACL, a renamed command): once
/// set, the writer that holds it uses the script. Shared by the copies of that writer.
final class NativeCommandRefusal: Sendable {
    private let refused = Mutex(false)

    /// Whether the server refused a native command.
    var isSet: Bool { refused.withLock { $0 } }

    /// Records the refusal.
    func set() { refused.withLock { $0 = true } }
}
