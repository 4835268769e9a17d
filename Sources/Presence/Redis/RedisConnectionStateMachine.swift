/// The decisions of the client's I/O loop, as a value: when to connect, how long to back off after
/// a failed attempt, what a pipeline's replies mean for the connection (a broken read or a timeout
/// drops it, `READONLY` says the server became a replica, `NOSCRIPT` says its script cache is gone).
/// It does no I/O and reads no clock; `RedisIOLoop` runs the hiredis calls around it, and unit
/// tests drive it by hand.
struct RedisConnectionStateMachine {
    typealias Instant = ContinuousClock.Instant

    enum State {
        /// No connection. After a failed attempt, calls before `retryAt` fail fast with `lastError`.
        case disconnected(failedAttempts: Int, retryAt: Instant?, lastError: RedisError?)
        case connected
    }

    /// What to do for the next pipeline.
    enum ConnectAction {
        /// Use the live connection.
        case useConnection
        /// Connect first (resolving through Sentinel where configured).
        case connect
        /// Fail the pipeline at once: the last attempt failed and the backoff has not passed.
        case failFast(RedisError)
    }

    /// What a pipeline's replies mean.
    struct ExchangeVerdict: Equatable {
        /// Drop the connection: a read failed or timed out (later replies would be misattributed),
        /// or the server answered `READONLY` (it is a replica now: find the primary again).
        var dropConnection: Bool
        /// Positions (request, command) of `EVALSHA` calls that met `NOSCRIPT`: load the scripts
        /// and send those again.
        var missingScripts: [Position]
        /// Whether the server answered `READONLY`.
        var demoted: Bool
    }

    struct Position: Equatable, Hashable {
        var request: Int
        var command: Int
    }

    let minimumBackoff: Duration
    let maximumBackoff: Duration
    let endpoint: String
    private(set) var state: State = .disconnected(failedAttempts: 0, retryAt: nil, lastError: nil)

    init(configuration: RedisConfiguration) {
        minimumBackoff = configuration.minimumBackoff
        maximumBackoff = configuration.maximumBackoff
        endpoint = "\(configuration.endpoint)"
    }

    /// A pipeline wants the connection.
    func connectionNeeded(now: Instant) -> ConnectAction {
        switch state {
        case .connected:
            return .useConnection
        case .disconnected(_, let retryAt?, let lastError?) where now < retryAt:
            let code: RedisError.Code = lastError.code == .replica ? .replica : .unavailable
            return .failFast(RedisError(code, "Redis at \(endpoint) is unavailable, retrying soon: \(lastError.message)", primary: lastError.primary))
        case .disconnected:
            return .connect
        }
    }

    /// The connection is up. Returns whether attempts had failed before it (a restore to log).
    mutating func connectSucceeded() -> Bool {
        defer { state = .connected }
        if case .disconnected(let failed, _, _) = state { return failed > 0 }
        return false
    }

    /// A connect attempt failed: back off `minimumBackoff × 2^(failures − 1)`, capped at
    /// `maximumBackoff`. Returns the backoff.
    @discardableResult
    mutating func connectFailed(_ error: RedisError, now: Instant) -> Duration {
        var failed = 1
        if case .disconnected(let before, _, _) = state { failed = before + 1 }
        let backoff = min(maximumBackoff, minimumBackoff * (1 << min(failed - 1, 20)))
        state = .disconnected(failedAttempts: failed, retryAt: now + backoff, lastError: error)
        return backoff
    }

    /// The replies of one written pipeline (`transactions[i]`: request `i` ran in `MULTI`/`EXEC`;
    /// its `NOSCRIPT`s are not retried, since its commands must run together or not at all).
    /// `broken`: a read failed or timed out. Drops the connection when the verdict says so; the
    /// next pipeline connects at once (no backoff: the server was reachable a moment ago).
    mutating func exchangeFinished(_ replies: [[Result<RedisValue, RedisError>]], transactions: [Bool], broken: RedisError?) -> ExchangeVerdict {
        var missing: [Position] = []
        var demoted = false
        for (request, results) in replies.enumerated() {
            for (command, result) in results.enumerated() {
                guard case .failure(let error) = result, error.code == .server else { continue }
                if error.message.hasPrefix("READONLY") { demoted = true }
                if error.message.hasPrefix("NOSCRIPT"), !transactions[request] {
                    missing.append(Position(request: request, command: command))
                }
            }
        }
        let drop = broken != nil || demoted
        if drop { state = .disconnected(failedAttempts: 0, retryAt: nil, lastError: nil) }
        // A broken connection cannot carry the retries.
        return ExchangeVerdict(dropConnection: drop, missingScripts: broken == nil ? missing : [], demoted: demoted)
    }

    /// The I/O loop stops: the connection goes.
    mutating func closed() {
        state = .disconnected(failedAttempts: 0, retryAt: nil, lastError: nil)
    }

    /// A `READONLY` refusal becomes ``RedisError/Code/replica`` for the caller; anything else is
    /// returned as it is.
    static func callerResult(_ result: Result<RedisValue, RedisError>) -> Result<RedisValue, RedisError> {
        guard case .failure(let error) = result, error.code == .server, error.message.hasPrefix("READONLY") else { return result }
        return .failure(RedisError(.replica, "the server became a replica and refused the write (\(error.message))"))
    }
}
