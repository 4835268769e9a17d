/// Settings of `GET /v1/changes` (the SSE change feed) and its ``ChangeHub``.
struct ChangeFeedConfiguration: Sendable {
    /// How long the hub waits before reading again when a read found nothing new: the feed's
    /// latency when idle, and its cost (one `XRANGE` pipeline per interval per server).
    var pollInterval: Duration
    /// How often every subscriber gets a `: keep-alive` comment, so that proxies keep idle
    /// connections open.
    var heartbeatInterval: Duration
    /// Changes queued for one subscriber that its connection has not taken yet; one more and the
    /// subscriber is cut off with a final `event: stream-error` (`slow_subscriber`). Must hold one read of
    /// the hub (``livePage`` entries of up to ``ChangeStreams/changesPerEntry`` changes × 16 streams
    /// on a Redis Cluster), or a burst cuts off everyone. Queued changes share the hub's encoded
    /// batches, so a subscriber's queue costs little memory of its own.
    var subscriberBuffer: Int
    /// Stream entries (each the changes of one script call) per stream per read of the hub (it
    /// reads again at once while a page comes back full).
    var livePage: Int
    /// Stream entries per stream per read when a subscriber replays its history (`Last-Event-ID`).
    var replayPage: Int
    /// History replays running at once (``ReplayGate``); more wait their turn.
    var concurrentReplays: Int

    /// Creates a configuration; the defaults suit production.
    init(
        pollInterval: Duration = .milliseconds(25), heartbeatInterval: Duration = .seconds(15), subscriberBuffer: Int = 32_768,
        livePage: Int = 8, replayPage: Int = 64, concurrentReplays: Int = 8
    ) {
        self.pollInterval = pollInterval
        self.heartbeatInterval = heartbeatInterval
        self.subscriberBuffer = max(subscriberBuffer, 1)
        self.livePage = max(livePage, 1)
        self.replayPage = max(replayPage, 1)
        self.concurrentReplays = max(concurrentReplays, 1)
    }
}
