import Glibc
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
    private let serverInfo: RedisServerInfoCache
    private let logger: Logger
    private var connection: RedisConnection?
    /// Every decision about the connection; this type only runs the hiredis calls.
    private var machine: RedisConnectionStateMachine
    private var sentinel: SentinelResolver?

    init(configuration: RedisConfiguration, scripts: [RedisScript], queue: RedisRequestQueue, metrics: RedisClientMetrics, serverInfo: RedisServerInfoCache, logger: Logger) {
        self.configuration = configuration
        self.scripts = scripts
        self.scriptsBySHA = Dictionary(scripts.map { ($0.sha1, $0) }, uniquingKeysWith: { first, _ in first })
        self.queue = queue
        self.metrics = metrics
        self.serverInfo = serverInfo
        self.logger = logger
        self.machine = RedisConnectionStateMachine(configuration: configuration)
        self.sentinel = configuration.sentinel.map { SentinelResolver($0, clientName: configuration.clientName) }
    }

    /// A pipeline written whose replies are not read yet.
    private struct Sent {
        var batch: [RedisRequestQueue.Request]
        var connection: RedisConnection
    }

    /// Runs until the queue is closed and drained. The requests waiting are written as one
    /// pipeline before the replies of the one written before it are read, so that the server has
    /// the next commands while the previous replies travel back and are decoded (one pipeline
    /// ahead, so that a failure or a retry concerns at most two).
    func run() {
        Self.blockBrokenPipeSignal()
        var inFlight: Sent?
        while true {
            let batch = queue.take(limit: configuration.maximumPipelineLength, wait: inFlight == nil)
            if batch == nil && inFlight == nil { break }
            var next = batch.flatMap(send)
            if let sent = inFlight { finish(sent, ahead: &next) }
            inFlight = next
        }
        connection = nil
        serverInfo.disconnected()
        machine.closed()
    }

    /// Blocks `SIGPIPE` on this thread, whose writes are the only ones hiredis makes: a write to a
    /// connection the server closed (a pipeline written ahead of replies that report it broken)
    /// then fails with `EPIPE`, which the read reports, instead of killing the process. Only this
    /// thread's mask changes; the signal's disposition stays the application's.
    private static func blockBrokenPipeSignal() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
    }

    /// Writes `batch` as one pipeline, connecting first if needed. Returns `nil` when there is no
    /// connection: the batch has failed then.
    private func send(_ batch: [RedisRequestQueue.Request]) -> Sent? {
        switch connected() {
        case .success(let connection):
            write(batch.map(\.commands), transactions: batch.map(\.transaction), on: connection)
            return Sent(batch: batch, connection: connection)
        case .failure(let error):
            for request in batch { request.fail(error) }
            return nil
        }
    }

    /// Reads the replies of `sent` and answers its callers. `ahead`, written after it on the same
    /// connection, is answered first when this one's replies drop the connection (its replies
    /// are read from it before it goes) or ask for scripts to be loaded again (which needs the
    /// connection to itself).
    private func finish(_ sent: Sent, ahead: inout Sent?) {
        let transactions = sent.batch.map(\.transaction)
        let (read, broken) = read(sent.batch.map(\.commands), transactions: transactions, on: sent.connection)
        var replies = read
        let verdict = machine.exchangeFinished(replies, transactions: transactions, broken: broken)
        if verdict.dropConnection || !verdict.missingScripts.isEmpty, let behind = ahead {
            ahead = nil
            var none: Sent?
            finish(behind, ahead: &none)
        }
        if !verdict.missingScripts.isEmpty { retryMissingScripts(verdict.missingScripts, of: sent.batch, &replies, on: sent.connection) }
        if verdict.demoted {
            logger.warning("Redis answered READONLY: the server was demoted to a replica; reconnecting", metadata: ["endpoint": "\(configuration.endpoint)"])
        }
        if verdict.dropConnection, connection === sent.connection { drop() }
        for (request, results) in zip(sent.batch, replies) {
            request.continuation.resume(returning: results.map(RedisConnectionStateMachine.callerResult))
        }
    }

    /// Writes every command of every group, then reads every reply, in order.
    private func exchange(_ groups: [[RedisCommand]], transactions: [Bool], on connection: RedisConnection) -> (replies: [[Result<RedisValue, RedisError>]], broken: RedisError?) {
        write(groups, transactions: transactions, on: connection)
        return read(groups, transactions: transactions, on: connection)
    }

    /// Writes every command of every group (a transaction's in `MULTI`/`EXEC`).
    private func write(_ groups: [[RedisCommand]], transactions: [Bool], on connection: RedisConnection) {
        var all: [RedisCommand] = []
        all.reserveCapacity(groups.reduce(0) { $0 + $1.count + 2 })
        for (commands, transaction) in zip(groups, transactions) {
            if transaction { all.append(RedisCommand("MULTI")) }
            all += commands
            if transaction { all.append(RedisCommand("EXEC")) }
        }
        connection.append(all)
        connection.flush()
        metrics.recordRoundTrip(commands: all.count)
    }

    /// Reads the replies of groups written by ``write(_:transactions:on:)``, in order. After a
    /// failed read every later reply fails with that error (`broken`).
    private func read(_ groups: [[RedisCommand]], transactions: [Bool], on connection: RedisConnection) -> (replies: [[Result<RedisValue, RedisError>]], broken: RedisError?) {
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
        return (results, broken)
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
    /// each other, but after the commands that followed them in their pipeline and in the one
    /// written behind it. (The presence
    /// writer keeps its invariants under that reordering; see `PresenceWriter.apply`.)
    private func retryMissingScripts(
        _ positions: [RedisConnectionStateMachine.Position], of batch: [RedisRequestQueue.Request],
        _ replies: inout [[Result<RedisValue, RedisError>]], on connection: RedisConnection
    ) {
        logger.info("Redis lost its script cache; reloading scripts", metadata: ["calls": "\(positions.count)"])
        let retried = positions.map { batch[$0.request].commands[$0.command] }
        let loads = scripts.map { RedisCommand("SCRIPT", "LOAD", $0.source) }
        let (answers, broken) = exchange([loads, retried], transactions: [false, false], on: connection)
        if broken != nil, machine.exchangeFinished(answers, transactions: [false, false], broken: broken).dropConnection, self.connection === connection { drop() }
        for (position, result) in zip(positions, answers[1]) {
            if case .failure(let error) = result, error.message.hasPrefix("NOSCRIPT") {
                let sha = batch[position.request].commands[position.command].arguments.dropFirst().first ?? "?"
                let name = scriptsBySHA[sha]?.name ?? sha
                replies[position.request][position.command] = .failure(RedisError(.noScript, "script \(name) is not registered with the client and not in Redis' cache"))
            } else {
                replies[position.request][position.command] = result
            }
        }
    }

    /// The live connection, connecting first when there is none and the backoff allows.
    /// A failed attempt reports its own error; calls during the backoff after it fail fast with
    /// ``RedisError/Code/unavailable`` (or ``RedisError/Code/replica``) naming that error.
    private func connected() -> Result<RedisConnection, RedisError> {
        switch machine.connectionNeeded(now: .now) {
        case .useConnection:
            if let connection { return .success(connection) }
        case .failFast(let error):
            return .failure(error)
        case .connect:
            break
        }
        do {
            var target = configuration
            if sentinel != nil {
                // Re-resolved on every connect: after a failover the next connect finds the new primary.
                target.endpoint = try sentinel!.resolve()
            }
            let connection = try RedisConnection.connect(target, scripts: scripts, describeServer: true)
            self.connection = connection
            if machine.connectSucceeded() {
                logger.info("Redis connection restored", metadata: ["endpoint": "\(target.endpoint)"])
            }
            if let answer = connection.serverInfo, let before = serverInfo.connected(answer), case .success(let now) = answer {
                logger.info("Redis server changed", metadata: ["endpoint": "\(target.endpoint)", "before": "\(before)", "now": "\(now)"])
            }
            metrics.setConnected(true)
            return .success(connection)
        } catch {
            let backoff = machine.connectFailed(error, now: .now)
            metrics.recordError()
            logger.warning("Redis connect failed", metadata: ["endpoint": "\(configuration.endpoint)", "error": "\(error.message)", "retryIn": "\(backoff)"])
            return .failure(error)
        }
    }

    private func drop() {
        connection = nil
        serverInfo.disconnected()
        metrics.setConnected(false)
    }
}
