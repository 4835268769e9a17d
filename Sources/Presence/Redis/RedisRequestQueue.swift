import Foundation

/// Requests waiting for the I/O thread. Callers on any task enqueue; the I/O thread takes
/// everything waiting at once, which is what makes concurrent callers share one pipeline.
///
/// `@unchecked Sendable`: every stored property is read and written only with `condition` locked.
final class RedisRequestQueue: @unchecked Sendable {
    /// One caller's commands, written back to back and answered together.
    struct Request {
        var commands: [RedisCommand]
        /// Wrap the commands in `MULTI`/`EXEC`.
        var transaction: Bool
        var continuation: CheckedContinuation<[Result<RedisValue, RedisError>], Never>

        var commandCount: Int { commands.count + (transaction ? 2 : 0) }

        func fail(_ error: RedisError) {
            continuation.resume(returning: Array(repeating: .failure(error), count: commands.count))
        }
    }

    private let condition = NSCondition()
    private var waiting: [Request] = []
    private var closed = false

    /// Adds a request; fails it at once with ``RedisError/Code/shutdown`` when the client has stopped.
    func enqueue(_ request: Request) {
        condition.lock()
        if closed {
            condition.unlock()
            request.fail(RedisError(.shutdown, "the Redis client has shut down"))
            return
        }
        waiting.append(request)
        if waiting.count == 1 { condition.signal() }
        condition.unlock()
    }

    /// Takes the requests waiting (at least one, then up to `limit` commands); with `wait`, blocks
    /// until one waits. Returns `nil` when none waits (with `wait`: once the queue is closed and
    /// empty).
    func take(limit: Int, wait: Bool = true) -> [Request]? {
        condition.lock()
        defer { condition.unlock() }
        while wait && waiting.isEmpty && !closed { condition.wait() }
        if waiting.isEmpty { return nil }
        var total = 0
        var count = 0
        for request in waiting {
            if count > 0 && total + request.commandCount > limit { break }
            total += request.commandCount
            count += 1
        }
        if count == waiting.count {
            defer { waiting = [] }
            return waiting
        }
        let taken = Array(waiting[..<count])
        waiting.removeFirst(count)
        return taken
    }

    /// Requests waiting, not yet taken.
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting.count
    }

    /// Refuses new requests; those already waiting are still taken and answered.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}
