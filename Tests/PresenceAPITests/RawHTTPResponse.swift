import Foundation
import Glibc

/// One HTTP/1.1 exchange over a fresh loopback connection, written byte for byte: the request line
/// and every header (Host included, or none) are the caller's, so that tests can send what a
/// browser or an attacker would. `Connection: close` is added and the answer read to the end.
struct RawHTTPResponse: Sendable {
    let status: Int
    /// Names lowercased, in order.
    let headers: [(name: String, value: String)]
    let body: String

    subscript(header name: String) -> String? {
        headers.first { $0.name == name.lowercased() }?.value
    }

    /// The `error.code` of a JSON error body.
    var errorCode: String? {
        let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        return (object?["error"] as? [String: Any])?["code"] as? String
    }

    /// Sends `method path` to 127.0.0.1:`port` with exactly `headers` (plus `Content-Length` for a
    /// body unless `chunked`, then the body in one chunk).
    static func send(
        port: Int, _ method: String, _ path: String, headers: [(String, String)], body: String? = nil, chunked: Bool = false
    ) async throws -> RawHTTPResponse {
        var text = "\(method) \(path) HTTP/1.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if chunked {
            text += "Transfer-Encoding: chunked\r\n"
        } else if let body {
            text += "Content-Length: \(body.utf8.count)\r\n"
        }
        text += "Connection: close\r\n\r\n"
        if chunked {
            let bytes = body?.utf8.count ?? 0
            text += bytes > 0 ? "\(String(bytes, radix: 16))\r\n\(body!)\r\n0\r\n\r\n" : "0\r\n\r\n"
        } else if let body {
            text += body
        }
        let request = Array(text.utf8)
        // Blocking socket calls run on a thread of their own, off the concurrency pool.
        let raw: [UInt8] = try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try exchange(port: port, request) }) }.start()
        }
        return try parse(raw)
    }

    private struct Failure: Error, CustomStringConvertible { let description: String }

    private static func exchange(port: Int, _ request: [UInt8]) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "cannot connect to 127.0.0.1:\(port)") }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { throw Failure(description: "write failed") }
            sent += count
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        return response
    }

    private static func parse(_ raw: [UInt8]) throws -> RawHTTPResponse {
        let text = String(decoding: raw, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { throw Failure(description: "no complete answer: \(text.prefix(200))") }
        let lines = text[..<end.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line \(lines[0])") }
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var body = String(text[end.upperBound...])
        if headers.contains(where: { $0.name == "transfer-encoding" && $0.value.lowercased() == "chunked" }) {
            var decoded = ""
            var rest = Substring(body)
            while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
                let start = lineEnd.upperBound
                let stop = rest.utf8.index(start, offsetBy: size)
                decoded += rest[start..<stop]
                rest = rest[stop...].dropFirst(2)
            }
            body = decoded
        }
        return RawHTTPResponse(status: status, headers: headers, body: body)
    }
}
