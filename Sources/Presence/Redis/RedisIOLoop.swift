import Logging

/// The body of the client's I/O thread: takes waiting requests, writes them as one pipeline,
/// reads the replies in order and hands each caller its own. Owns the hiredis connection; all
/// blocking calls happen here, never on a Swift concurrency or NIO thread.
///
/// `@unchecked Sendable`: it is handed to its thread once, before the thread starts, and from then
/// on only that thread touches its mutable state.
final class RedisIOLoop: @unchecked Sendable {
    private let configuration: RedisConfiguration
    private let scripts: [RedisScript]
    private let scriptsBySHA: [String: RedisScript]
    private let queue: RedisRequestQueue
    private let metrics: RedisClientMetrics
    private let logger: Logger
    private var connection: RedisConnection?
    private var failedAttempts = 0
    private var nextAttempt: ContinuousClock.Instant?
    private var lastError: RedisError?
    private var sentinel: SentinelResolver?

    init(configuration: RedisConfiguration, scripts: [RedisScript], queue: RedisRequestQueue, metrics: RedisClientMetrics, logger: Logger) {
        self.configuration = configuration
        self.scripts = scripts
        self.scriptsBySHA = Dictionary(scripts.map { ($0.sha1, $0) }, uniquingKeysWith: { first, _ in first })
        self.queue = queue
        self.metrics = metrics
        self.logger = logger
        self.sentinel = configuration.sentinel.map { SentinelResolver($0, clientName: configuration.clientName) }
    }

    /// Runs until the queue is closed and drained.
    func run() {
        while let batch = queue.take(limit: configuration.maximumPipelineLength) {
            process(batch)
        }
        connection = nil
    }

    private func process(_ batch: [RedisRequestQueue.Request]) {
        let connection: RedisConnection
        switch connected() {
        case .success(let live): connection = live
        case .failure(let error):
            for request in batch { request.fail(error) }
            return
        }
        var replies = exchange(batch.map(\.commands), transactions: batch.map(\.transaction), on: connection)
        retryMissingScripts(batch, &replies)
        if replies.contains(where: { $0.contains(where: Self.isReadOnly) }) {
            logger.warning("Redis answered READONLY: the server was demoted to a replica; reconnecting", metadata: ["endpoint": "\(configuration.endpoint)"])
            drop()
        }
        for (request, results) in zip(batch, replies) {
            request.continuation.resume(returning: results.map(Self.mapReadOnly))
        }
    }

    /// Writes every command of every group, then reads every reply, in order.
    private func exchange(_ groups: [[RedisCommand]], transactions: [Bool], on connection: RedisConnection) -> [[Result<RedisValue, RedisError>]] {
        var written = 0
        for (commands, transaction) in zip(groups, transactions) {
            if transaction { connection.append(RedisCommand("MULTI")) }
            for command in commands { connection.append(command) }
            if transaction { connection.append(RedisCommand("EXEC")) }
            written += commands.count + (transaction ? 2 : 0)
        }
        metrics.recordRoundTrip(commands: written)
        var broken: RedisError?
        func next() -> Result<RedisValue, RedisError> {
            if let broken { return .failure(broken) }
            do {
                return try connection.readReply()
            } catch {
                broken = error
                metrics.recordError()
                logger.warning("Redis connection failed", metadata: ["endpoint": "\(configuration.endpoint)", "error": "\(error.message)"])
                return .failure(error)
            }
        }
        var results: [[Result<RedisValue, RedisError>]] = []
        results.reserveCapacity(groups.count)
        for (commands, transaction) in zip(groups, transactions) {
            if !transaction {
                var group: [Result<RedisValue, RedisError>] = []
                group.reserveCapacity(commands.count)
                for _ in commands { group.append(next()) }
                results.append(group)
                continue
            }
            let multi = next()
            let queued = commands.map { _ in next() }
            let exec = next()
            if case .failure(let error) = multi, error.code == .server {
                // MULTI refused (an ACL, say): the commands ran one by one; their replies are real.
                results.append(queued)
            } else {
                results.append(Self.transactionResults(queued: queued, exec: exec))
            }
        }
        if broken != nil { drop() }
        return results
    }

    private static func transactionResults(queued: [Result<RedisValue, RedisError>], exec: Result<RedisValue, RedisError>) -> [Result<RedisValue, RedisError>] {
        switch exec {
        case .failure(let error):
            // EXECABORT: report each command's own queueing error where it had one.
            return queued.map { result in
                if case .failure(let own) = result { return .failure(own) }
                return .failure(error)
            }
        case .success(.null):
            let error = RedisError(.transactionAborted, "EXEC returned null: a watched key changed")
            return queued.map { _ in .failure(error) }
        case .success(let value):
            guard let elements = value.array, elements.count == queued.count else {
                let error = RedisError(.protocolError, "EXEC returned \(value), expected \(queued.count) replies")
                return queued.map { _ in .failure(error) }
            }
            return elements.map { element in
                if case .error(let message) = element { return .failure(RedisError(.server, message)) }
                return .success(element)
            }
        }
    }

    /// After `SCRIPT FLUSH` (or a server that lost its cache) `EVALSHA` answers `NOSCRIPT`:
    /// load the scripts again and send those calls once more, in their original order relative to
    /// each other, but after the commands that followed them in the first pipeline. (The presence
    /// writer keeps its invariants under that reordering; see `PresenceWriter.apply`.)
    private func retryMissingScripts(_ batch: [RedisRequestQueue.Request], _ replies: inout [[Result<RedisValue, RedisError>]]) {
        var positions: [(Int, Int)] = []
        for (requestIndex, results) in replies.enumerated() where !batch[requestIndex].transaction {
            for (commandIndex, result) in results.enumerated() {
                if case .failure(let error) = result, error.code == .server, error.message.hasPrefix("NOSCRIPT") {
                    positions.append((requestIndex, commandIndex))
                }
            }
        }
        guard !positions.isEmpty, let connection else { return }
        logger.info("Redis lost its script cache; reloading scripts", metadata: ["calls": "\(positions.count)"])
        let retried = positions.map { batch[$0.0].commands[$0.1] }
        let loads = scripts.map { RedisCommand("SCRIPT", "LOAD", $0.source) }
        let answers = exchange([loads, retried], transactions: [false, false], on: connection)
        for (position, result) in zip(positions, answers[1]) {
            if case .failure(let error) = result, error.message.hasPrefix("NOSCRIPT") {
                let sha = batch[position.0].commands[position.1].arguments.dropFirst().first ?? "?"
                let name = scriptsBySHA[sha]?.name ?? sha
                replies[position.0][position.1] = .failure(RedisError(.noScript, "script \(name) is not registered with the client and not in Redis' cache"))
            } else {
                replies[position.0][position.1] = result
            }
        }
    }

    private static func isReadOnly(_ result: Result<RedisValue, RedisError>) -> Bool {
        if case .failure(let error) = result, error.code == .server, error.message.hasPrefix("READONLY") { return true }
        return false
    }

    private static func mapReadOnly(_ result: Result<RedisValue, RedisError>) -> Result<RedisValue, RedisError> {
        guard isReadOnly(result), case .failure(let error) = result else { return result }
        return .failure(RedisError(.replica, "the server became a replica and refused the write (\(error.message))"))
    }

    /// The live connection, connecting first when there is none and the backoff allows.
    /// A failed attempt reports its own error; calls during the backoff after it fail fast with
    /// ``RedisError/Code/unavailable`` (or ``RedisError/Code/replica``) naming that error.
    private func connected() -> Result<RedisConnection, RedisError> {
        if let connection { return .success(connection) }
        if let nextAttempt, let lastError, ContinuousClock.now < nextAttempt {
            let code: RedisError.Code = lastError.code == .replica ? .replica : .unavailable
            return .failure(RedisError(code, "Redis at \(configuration.endpoint) is unavailable, retrying soon: \(lastError.message)", primary: lastError.primary))
        }
        do {
            var target = configuration
            if sentinel != nil {
                // Re-resolved on every connect: after a failover the next connect finds the new primary.
                target.endpoint = try sentinel!.resolve()
            }
            let connection = try RedisConnection.connect(target, scripts: scripts)
            self.connection = connection
            if failedAttempts > 0 {
                logger.info("Redis connection restored", metadata: ["endpoint": "\(target.endpoint)"])
            }
            failedAttempts = 0
            nextAttempt = nil
            lastError = nil
            metrics.setConnected(true)
            return .success(connection)
        } catch {
            failedAttempts += 1
            let backoff = min(configuration.maximumBackoff, configuration.minimumBackoff * (1 << min(failedAttempts - 1, 20)))
            nextAttempt = ContinuousClock.now + backoff
            lastError = error
            metrics.recordError()
            logger.warning("Redis connect failed", metadata: ["endpoint": "\(configuration.endpoint)", "error": "\(error.message)", "retryIn": "\(backoff)"])
            return .failure(error)
        }
    }

    private func drop() {
        connection = nil
        nextAttempt = nil
        metrics.setConnected(false)
    }
}
