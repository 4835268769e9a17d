/// A lease in Redis: one string key holding its holder's id, with a `PX` expiry. Whoever sets it
/// with `SET … NX PX` holds it until it expires; the holder renews it by compare-and-`PEXPIRE`
/// (``PresenceScripts/lease``) and may release it by compare-and-`DEL`. Used so that one
/// `presence serve` at a time does a job (the ``ChangeWatcher``, each webhook's delivery); a
/// holder that stops renewing (killed, stalled) loses it after one `duration`, and another takes
/// over then.
public struct RedisLease: Sendable {
    /// The client; it must have been created with ``PresenceScripts/all``.
    public let client: RedisClient
    /// The lease key.
    public let key: String
    /// This holder's id, stored as the key's value.
    public let holder: String
    /// How long the lease lasts after it is taken or renewed.
    public let duration: Duration

    /// Creates a handle on the lease `key` for `holder`.
    public init(client: RedisClient, key: String, holder: String, duration: Duration) {
        self.client = client
        self.key = key
        self.holder = holder
        self.duration = duration
    }

    /// Renews the lease when `holding` (this holder believes it holds it), else takes it when free.
    /// Returns whether this holder holds it now. One round trip (two when a renewal finds it lost).
    /// - Throws: ``RedisError``.
    public func hold(renewing holding: Bool) async throws -> Bool {
        let milliseconds = String(max(duration.milliseconds, 1))
        if holding, try await client.send(PresenceScripts.lease.call(keys: [key], arguments: [holder, milliseconds])).int == 1 {
            return true
        }
        return try await client.send(RedisCommand("SET", key, holder, "NX", "PX", milliseconds)).string == "OK"
    }

    /// Releases the lease if this holder holds it, so that another takes over at once (rather
    /// than after it expires). Returns whether it held it.
    /// - Throws: ``RedisError``.
    @discardableResult
    public func release() async throws -> Bool {
        try await client.send(PresenceScripts.lease.call(keys: [key], arguments: [holder, "0"])).int == 1
    }
}
