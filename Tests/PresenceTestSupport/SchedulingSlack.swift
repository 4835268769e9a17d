import Synchronization

/// Runs `body` while a probe task sleeps for `interval` again and again, and returns how late the
/// latest-waking of those sleeps woke: the delay this machine, loaded as it is during `body`, adds
/// to any timer (a node's heartbeat tick, a poll). Timing bounds in tests add it to what the
/// configuration promises, so that a busy machine (tests run in parallel on two shared cores)
/// cannot fail them while a real regression still does.
///
/// How late a sleep wakes depends on how busy the machine is when it is due, not on its length, so
/// short probes (10 ms by default) stand for a heartbeat tick that fell due anywhere in `body`; a
/// probe as long as the heartbeat would miss a stall between its start and end. A sleep still
/// running when `body` ends counts as late by however much it is overdue.
public func measuringSchedulingSlack<T: Sendable>(
    probing interval: Duration = .milliseconds(10), _ body: () async throws -> T
) async throws -> (result: T, slack: Duration) {
    let probe = Probe()
    let clock = ContinuousClock()
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            while !Task.isCancelled {
                let start = clock.now
                probe.state.withLock { $0.sleepingSince = start }
                do { try await Task.sleep(for: interval, clock: clock) } catch { return }
                let late = clock.now - start - interval
                probe.state.withLock { $0.worst = max($0.worst, late); $0.sleepingSince = nil }
            }
        }
        let result: T
        do {
            result = try await body()
        } catch {
            group.cancelAll()
            throw error
        }
        let now = clock.now
        group.cancelAll()
        let slack = probe.state.withLock { state in
            max(state.worst, state.sleepingSince.map { now - $0 - interval } ?? .zero)
        }
        return (result, slack)
    }
}

private final class Probe: Sendable {
    struct State {
        var worst = Duration.zero
        var sleepingSince: ContinuousClock.Instant?
    }
    let state = Mutex(State())
}
