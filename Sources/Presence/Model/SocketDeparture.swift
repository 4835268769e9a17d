import Foundation

/// When and why a socket's record last went: its tombstone (`P:g:{socket}`), kept for
/// ``PresenceConfiguration/socketHistoryRetention`` by the script call that deleted or displaced
/// the record (`docs/data-model.md`, "Last seen").
public struct SocketDeparture: Sendable, Hashable {
    /// When the record went (the Redis server's clock, millisecond precision).
    public var disconnectedAt: Date
    /// Why: reported gone, its node announced down or left, or displaced by a connect elsewhere.
    public var reason: DisconnectReason

    /// Creates a value.
    public init(disconnectedAt: Date, reason: DisconnectReason) {
        self.disconnectedAt = disconnectedAt
        self.reason = reason
    }

    /// Codes of the stored value, `ms × 10 + code` (an integer, which Redis stores without a string).
    static let codes: [DisconnectReason: Int] = [.disconnected: 1, .nodeDown: 2, .nodeLeft: 3, .moved: 4]

    /// Decodes a stored value; `nil` when it is not one.
    init?(decoding value: String) {
        guard let number = Int(value), number > 0, let reason = Self.codes.first(where: { $0.value == number % 10 })?.key else { return nil }
        self.init(disconnectedAt: Date(timeIntervalSince1970: Double(number / 10) / 1000), reason: reason)
    }
}
