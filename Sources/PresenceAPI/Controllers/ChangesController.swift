import Hummingbird
import Presence
import ServiceLifecycle

/// `GET /v1/changes`: the change stream as server-sent events (read token), through the
/// server's one ``ChangeHub``.
struct ChangesController<Context: RequestContext>: Sendable {
    let registry: PresenceRegistry
    /// `nil` when the change stream is off (`--changes off`): 503 `changes_off`.
    let hub: ChangeHub?

    /// What a request asked for, once checked.
    struct Query: Sendable, Equatable {
        var filter = ChangeFilter()
        /// From `Last-Event-ID` (preferred: a browser's reconnect sends it) or `since`; `nil`: live only.
        var since: ChangePosition?
    }

    /// Parses `types`, `userId` (repeatable), `nodeId`, `since` and the `Last-Event-ID` header.
    /// - Throws: ``APIError`` 400 `invalid_parameter` / `invalid_id`.
    static func query(_ request: Request) throws -> Query {
        var query = Query()
        let parameters = request.uri.queryParameters
        let typeValues = parameters[values: "types"]
        if !typeValues.isEmpty {
            var kinds = Set<PresenceChange.Kind>()
            for value in typeValues {
                for name in value.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let kind = PresenceChange.Kind(rawValue: String(name)) else {
                        throw APIError.badRequest("invalid_parameter", "types: unknown change type '\(name)'; expected a comma-separated list of \(PresenceChange.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    kinds.insert(kind)
                }
            }
            query.filter.kinds = kinds
        }
        let users = parameters[values: "userId"]
        if !users.isEmpty {
            guard users.count <= PresenceRegistry.maximumBatch else {
                throw APIError.badRequest("invalid_parameter", "userId may be given at most \(PresenceRegistry.maximumBatch) times")
            }
            query.filter.userIDs = Set(try users.map { user in
                do { try PresenceID.validate(String(user), field: "userId") } catch { throw APIError.from(error) }
                return String(user)
            })
        }
        let nodes = parameters[values: "nodeId"]
        if let node = nodes.first {
            guard nodes.count == 1 else { throw APIError.badRequest("invalid_parameter", "nodeId may be given once") }
            do { try PresenceID.validate(String(node), field: "nodeId") } catch { throw APIError.from(error) }
            query.filter.nodeID = String(node)
        }
        if let text = request.headers.first(where: { $0.name.canonicalName == "last-event-id" })?.value {
            guard let position = ChangePosition(text) else { throw Self.badPosition("Last-Event-ID") }
            query.since = position
        } else if let text = parameters["since"] {
            guard let position = ChangePosition(String(text)) else { throw Self.badPosition("since") }
            query.since = position
        }
        return query
    }

    private static func badPosition(_ name: String) -> APIError {
        APIError.badRequest("invalid_parameter", "\(name) must be a change position (an event id: i=ms-seq joined by commas, such as 0=1700000000000-3), or empty for the oldest retained change")
    }

    /// `GET /v1/changes`. Everything that can fail with a status (parameters, a trimmed position,
    /// Redis down) is checked before the 200; then the stream runs until the client goes, the
    /// server shuts down, or the subscriber falls behind (a final `event: stream-error`).
    @Sendable func changes(_ request: Request, context: Context) async throws -> Response {
        let query = try Self.query(request)
        guard let hub else {
            throw APIError(.serviceUnavailable, "changes_off", "the change stream is off on this server (--changes off)")
        }
        // A resumed position: 410 when trimmed, 503 when Redis is down (one XINFO pipeline).
        if let since = query.since {
            do {
                try await registry.checkRetained(since)
            } catch let error as PresenceError where error.code == .changesTrimmed {
                let oldest = try await registry.oldestChangePosition()
                throw APIError(.gone, "position_trimmed", "changes after \(since) are no longer retained; resume from the oldest position \(oldest) (some changes were missed)", oldestPosition: oldest.description)
            }
        }
        guard let subscribed = hub.subscribe(filter: query.filter) else {
            throw APIError(.serviceUnavailable, "shutting_down", "the server is shutting down")
        }
        // Where this subscriber starts, and whether it reads history before the live feed: a
        // resumed position always; a live-only subscriber when the hub has no position yet (it
        // has not read, or Redis is down: then the read here answers 503).
        let start: ChangePosition
        let replay: Bool
        do {
            if let since = query.since {
                start = since
                replay = true
            } else if let live = subscribed.livePosition {
                start = live
                replay = false
            } else {
                start = hub.adopt(try await registry.newestChangePosition())
                replay = true
            }
        } catch {
            hub.unsubscribe(subscribed.id)
            throw error
        }
        let registry = registry
        let page = hub.configuration.replayPage
        var headers: HTTPFields = [:]
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers.append(.init(name: .init("X-Accel-Buffering")!, value: "no"))  // nginx: do not buffer the stream
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { hub.unsubscribe(subscribed.id) }
            let subscription = subscribed.subscription
            try await withGracefulShutdownHandler {
                var stream = ChangeStreamWriter(position: start)
                try await writer.write(ByteBuffer(string: ServerSentEvent.comment("subscribed")))
                if replay {
                    // Ends the stream quietly when cancelled or shutting down while it waits.
                    do { try await hub.replays.acquire() } catch { return }
                    defer { hub.replays.release() }
                    while true {
                        let read: ChangeRead
                        do {
                            read = try await registry.readChanges(after: stream.position, count: page)
                        } catch {
                            // Redis went away mid-replay: say so, with where to resume, and end.
                            let apiError = APIError.from(error)
                            try await writer.write(ByteBuffer(string: ServerSentEvent.error(code: apiError.code, message: apiError.message, position: stream.position)))
                            return
                        }
                        if read.position == stream.position { break }
                        let text = stream.events(read.changes, filter: query.filter)
                        stream.advance(to: read.position)
                        if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
                        // Cut off meanwhile (its queue overflowed): the loop below says so at once.
                        if Task.isCancelled || subscription.hasEnded { break }
                    }
                }
                while true {
                    let batch = await subscription.next()
                    var text = stream.events(batch.parts, through: batch.through)
                    if batch.heartbeat && text.isEmpty { text = ServerSentEvent.keepAlive(position: stream.position) }
                    if batch.end == .slow {
                        text += ServerSentEvent.error(code: "slow_subscriber", message: "this subscriber fell \(subscription.capacity) changes behind and was cut off; reconnect with Last-Event-ID to resume", position: stream.position)
                    }
                    if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
                    if batch.end != nil { break }
                }
            } onGracefulShutdown: {
                subscribed.subscription.finish(.shutdown)
            }
            try await writer.finish(nil)
        })
    }
}

/// The text of a subscriber's events, and its position (after every change it has read, its
/// history's filtered-out ones included): live changes at or before it were read already and
/// are dropped, so history then live has neither gap nor duplicate.
struct ChangeStreamWriter {
    private(set) var position: ChangePosition

    init(position: ChangePosition) { self.position = position }

    /// Moves past entries read without events (undecodable ones).
    mutating func advance(to other: ChangePosition) { position.advance(to: other) }

    /// The events of `changes` not read yet that pass `filter` (`nil`: already filtered).
    mutating func events(_ changes: [PresenceChange], filter: ChangeFilter?) -> String {
        var text = ""
        for change in changes where !position.hasPassed(change.id) {
            position.advance(past: change.id)
            if filter?.matches(change) ?? true { text += ServerSentEvent.change(change, position: position) }
        }
        return text
    }

    /// The events of the hub's reads (filtered already). At a read's start (every live subscriber,
    /// once caught up) its texts go as the hub encoded them; otherwise (after a replay) change by
    /// change, dropping what was read already. Either way the position then covers the whole read:
    /// everything in it was written or filtered out.
    mutating func events(_ parts: [ChangeSubscription.Part], through: ChangeBatch? = nil) -> String {
        var text = ""
        for part in parts {
            let batch = part.batch
            if position == batch.start {
                if let indices = part.indices {
                    for index in indices { text += batch.events[index] }
                } else {
                    for event in batch.events { text += event }
                }
                position = batch.end
            } else {
                text += events(part.changes, filter: nil)
                position.advance(to: batch.end)
            }
        }
        // Reads that held nothing for this subscriber move it on too: an idle filtered subscriber's
        // keep-alive then carries a position that a reconnect can resume from (never 410 for
        // changes it did not want).
        if let through { position.advance(to: through.end) }
        return text
    }
}
