import Synchronization

/// Several threads asking cluster nodes for the topology at once: the first answer resumes the
/// waiting caller, or, when every one failed, their failures together.
final class TopologyRace: Sendable {
    typealias Endpoint = RedisConfiguration.Endpoint
    typealias Answer = Result<(RedisClusterTopology, Endpoint), RedisError>

    private struct State {
        var continuation: CheckedContinuation<Answer, Never>?
        var failures: [String] = []
        var remaining: Int
    }

    private let state: Mutex<State>

    init(_ continuation: CheckedContinuation<Answer, Never>, runners: Int) {
        state = Mutex(State(continuation: continuation, remaining: runners))
    }

    /// One runner's outcome.
    func finished(_ candidate: Endpoint, _ outcome: Result<RedisClusterTopology, RedisError>) {
        let (waiter, answer) = state.withLock { state -> (CheckedContinuation<Answer, Never>?, Answer?) in
            state.remaining -= 1
            switch outcome {
            case .success(let topology):
                defer { state.continuation = nil }
                return (state.continuation, .success((topology, candidate)))
            case .failure(let error):
                state.failures.append("\(candidate): \(error.message)")
                guard state.remaining == 0 else { return (nil, nil) }
                defer { state.continuation = nil }
                return (state.continuation, .failure(RedisError(
                    .unavailable, "no Redis Cluster node answered CLUSTER SHARDS: \(state.failures.joined(separator: "; "))")))
            }
        }
        if let waiter, let answer { waiter.resume(returning: answer) }
    }
}
