/// A condition the test waited for did not come true in time.
struct WaitTimeout: Error, CustomStringConvertible {
    let description: String
}

/// Polls `condition` every `interval` until it holds: waiting for an event, not sleeping a fixed
/// time. Throws ``WaitTimeout`` naming `what` (and the last state, when given) once `limit` passed.
func waitUntil(
    _ what: String, within limit: Duration, interval: Duration = .milliseconds(20),
    state: () async -> String = { "" }, _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let start = clock.now
    while try await !condition() {
        if clock.now - start >= limit {
            let last = await state()
            throw WaitTimeout(description: "\(what): not within \(limit)" + (last.isEmpty ? "" : "; last: \(last)"))
        }
        try await Task.sleep(for: interval)
    }
}
