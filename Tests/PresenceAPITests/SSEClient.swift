import Foundation
import Glibc
import Synchronization

/// A server-sent events client over a raw loopback socket, for tests: it sends one GET, then a
/// thread of its own reads the answer (chunked or not) and parses it into ``Item``s, which
/// ``next(timeout:)`` hands out in order. ``pause()`` stops reading (a subscriber that never
/// reads: with a small receive buffer, the server's writes soon block); ``resume()`` goes on.
final class SSEClient: Sendable {
    /// One parsed piece of the stream.
    enum Item: Sendable, Equatable {
        case event(Event)
        /// A comment line's text (`: keep-alive` → `keep-alive`).
        case comment(String)
        /// An event with an `id:` and no data (it sets EventSource's last event id only).
        case position(String)
        /// The server closed the connection (or the read failed).
        case closed
    }

    struct Event: Sendable, Equatable {
        var id: String?
        var event: String?
        var data: String

        /// `data` as a JSON object.
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]) ?? [:] }
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    let status: Int
    let headers: [String: String]
    /// The body when the answer was not a stream (an error).
    let body: String
    private let fd: Int32
    private let state: Mutex<State>
    private let gate = DispatchSemaphore(value: 0)

    private struct State {
        var items: [Item] = []
        var waiters: [CheckedContinuation<Void, Never>] = []
        var paused = false
        var closed = false
    }

    /// Connects to 127.0.0.1:`port` and sends `GET path` with `headers` (and the read token);
    /// returns once the status and headers arrived. `receiveBuffer` sets `SO_RCVBUF` first.
    static func connect(port: Int, _ path: String, headers: [(String, String)] = [], token: String? = readToken, receiveBuffer: Int32? = nil) async throws -> SSEClient {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                do {
                    let client = try SSEClient(port: port, path: path, headers: headers, token: token, receiveBuffer: receiveBuffer)
                    continuation.resume(returning: client)
                    client.readLoop()
                } catch {
                    continuation.resume(throwing: error)
                }
            }.start()
        }
    }

    private init(port: Int, path: String, headers: [(String, String)], token: String?, receiveBuffer: Int32?) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw Failure(description: "cannot connect to 127.0.0.1:\(port)") }
        var text = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if let token { text += "Authorization: Bearer \(token)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        let request = Array(text.utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        // The head, byte by byte up to the blank line (it is small).
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) {
            guard read(fd, &byte, 1) == 1 else { close(fd); throw Failure(description: "the server closed before answering: \(String(decoding: head, as: UTF8.self))") }
            head.append(byte)
        }
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { close(fd); throw Failure(description: "bad status line \(lines[0])") }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        self.fd = fd
        self.status = status
        self.headers = fields
        self.state = Mutex(State())
        if status != 200 {
            // An error body: read it to its length.
            var body: [UInt8] = []
            let length = Int(fields["content-length"] ?? "0") ?? 0
            var buffer = [UInt8](repeating: 0, count: 4096)
            while body.count < length {
                let count = read(fd, &buffer, min(buffer.count, length - body.count))
                if count <= 0 { break }
                body += buffer[0..<count]
            }
            self.body = String(decoding: body, as: UTF8.self)
            state.withLock { $0.closed = true; $0.items.append(.closed) }
        } else {
            self.body = ""
        }
    }

    deinit { close(fd) }

    /// The JSON error body's `error` object.
    var error: [String: Any] {
        ((try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["error"] as? [String: Any]) ?? [:]
    }

    /// Stops reading (after the read under way, if any).
    func pause() { state.withLock { $0.paused = true } }

    /// Reads again.
    func resume() {
        let wasPaused = state.withLock { state in
            defer { state.paused = false }
            return state.paused
        }
        if wasPaused { gate.signal() }
    }

    /// The next item, waiting up to `timeout` for it.
    func next(timeout: Duration = .seconds(10)) async throws -> Item {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let item: Item? = state.withLock { state in state.items.isEmpty ? nil : state.items.removeFirst() }
            if let item { return item }
            guard clock.now < deadline else { throw Failure(description: "no server-sent item within \(timeout)") }
            // Woken by the reader; the timeout task wakes it too, to check the deadline.
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state in
                    if state.items.isEmpty { state.waiters.append(continuation); return false }
                    return true
                }
                if ready { continuation.resume() }
                if !ready {
                    Task { [weak self] in
                        try? await Task.sleep(until: deadline, clock: clock)
                        self?.wakeAll()
                    }
                }
            }
        }
    }

    /// The next event (skipping comments), failing on the end of the stream.
    func nextEvent(timeout: Duration = .seconds(10)) async throws -> Event {
        while true {
            switch try await next(timeout: timeout) {
            case .event(let event): return event
            case .comment, .position: continue
            case .closed: throw Failure(description: "the stream ended")
            }
        }
    }

    /// Events until (and with) the first that `last` accepts.
    func events(through last: (Event) -> Bool, timeout: Duration = .seconds(10)) async throws -> [Event] {
        var events: [Event] = []
        while true {
            let event: Event
            do {
                event = try await nextEvent(timeout: timeout)
            } catch {
                throw Failure(description: "\(error) after \(events.map { "\($0.event ?? "?") \($0.data)" })")
            }
            events.append(event)
            if last(event) { return events }
        }
    }

    /// Waits for a comment with `text`.
    func awaitComment(_ text: String, timeout: Duration = .seconds(10)) async throws {
        while true {
            switch try await next(timeout: timeout) {
            case .comment(let comment) where comment == text: return
            case .closed: throw Failure(description: "the stream ended before the comment '\(text)'")
            default: continue
            }
        }
    }

    private func wakeAll() {
        let waiters = state.withLock { state in
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func append(_ items: [Item]) {
        if items.isEmpty { return }
        state.withLock { $0.items += items }
        wakeAll()
    }

    /// On the reader thread: reads, de-chunks and parses until the connection ends.
    private func readLoop() {
        if state.withLock({ $0.closed }) { return }
        let chunked = headers["transfer-encoding"]?.lowercased() == "chunked"
        var buffer = [UInt8](repeating: 0, count: 4096)
        var raw: [UInt8] = []
        var body: [UInt8] = []
        var event = Event(data: "")
        var hasData = false
        var ended = false  // the last chunk came: the response is over (the connection may stay)
        while !ended {
            if state.withLock({ $0.paused }) { gate.wait() }
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            if chunked {
                raw += buffer[0..<count]
                // Whole chunks: "size\r\n" data "\r\n".
                while let lineEnd = Self.find(raw, [13, 10]) {
                    guard let size = Int(String(decoding: raw[..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16) else { break }
                    guard raw.count >= lineEnd + 2 + size + 2 else { break }
                    body += raw[(lineEnd + 2)..<(lineEnd + 2 + size)]
                    raw.removeFirst(lineEnd + 2 + size + 2)
                    if size == 0 { ended = true; break }
                }
            } else {
                body += buffer[0..<count]
            }
            var items: [Item] = []
            while let lineEnd = body.firstIndex(of: 10) {
                let line = String(decoding: body[..<lineEnd], as: UTF8.self)
                body.removeFirst(lineEnd + 1)
                if line.isEmpty {
                    if hasData || event.event != nil {
                        items.append(.event(event))
                    } else if let id = event.id {
                        items.append(.position(id))
                    }
                    event = Event(data: "")
                    hasData = false
                } else if line.hasPrefix(":") {
                    items.append(.comment(String(line.dropFirst()).trimmingCharacters(in: .whitespaces)))
                } else {
                    let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                    let value = parts.count > 1 ? String(parts[1].drop { $0 == " " }.prefix(Int.max)) : ""
                    switch parts[0] {
                    case "id": event.id = value
                    case "event": event.event = value
                    case "data": event.data += (hasData ? "\n" : "") + value; hasData = true
                    default: break
                    }
                }
            }
            append(items)
        }
        state.withLock { $0.closed = true }
        append([.closed])
    }

    private static func find(_ bytes: [UInt8], _ pattern: [UInt8]) -> Int? {
        guard bytes.count >= pattern.count else { return nil }
        for index in 0...(bytes.count - pattern.count) where bytes[index] == pattern[0] && bytes[index + 1] == pattern[1] { return index }
        return nil
    }

    /// Closes the connection (the reader thread then ends).
    func disconnect() {
        shutdown(fd, Int32(SHUT_RDWR))
        resume()
    }
}
