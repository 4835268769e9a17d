import Foundation
import Hummingbird
import Presence

/// A request body read as a JSON object, checked field by field so that every mistake gets a
/// precise 400 (or 413 over 1 MiB) before anything is written.
struct JSONBody {
    static let maximumSize = 1 << 20
    private let fields: [String: JSONValue]

    /// Reads the body. An empty body is `{}` when `allowEmpty`.
    static func read(_ request: Request, allowEmpty: Bool, allowedKeys: Set<String>) async throws -> JSONBody {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumSize)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the body exceeds 1 MiB")
        }
        if buffer.readableBytes == 0 || buffer.readableBytesView.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) {
            guard allowEmpty else { throw APIError.badRequest("invalid_body", "a JSON object body is required") }
            return JSONBody(fields: [:])
        }
        let object: JSONValue
        do {
            object = try buffer.withUnsafeReadableBytes { try JSONValue.parse($0) }
        } catch {
            throw APIError.badRequest("invalid_body", "the body is not valid JSON")
        }
        guard case .object(let fields) = object else {
            throw APIError.badRequest("invalid_body", "the body must be a JSON object")
        }
        // Sorted only when one is unknown: the message names the same one every time.
        if fields.keys.contains(where: { !allowedKeys.contains($0) }), let unknown = fields.keys.sorted().first(where: { !allowedKeys.contains($0) }) {
            throw APIError.badRequest("invalid_body", "unknown field '\(unknown.prefix(64))'; allowed: \(allowedKeys.sorted().joined(separator: ", "))")
        }
        return JSONBody(fields: fields)
    }

    init(fields: [String: JSONValue]) { self.fields = fields }

    subscript(key: String) -> JSONValue? { fields[key] }

    /// An optional id-like string field (`null` counts as absent).
    func id(_ key: String) throws -> String? {
        try Self.id(fields[key], field: key)
    }

    static func id(_ value: JSONValue?, field: String) throws -> String? {
        guard let value, value != .null else { return nil }
        guard case .string(let text) = value else { throw APIError.badRequest("invalid_body", "\(field) must be a string") }
        try PresenceID.validate(text, field: field)
        return text
    }

    /// An optional integer field in `0...maximum` (`null` counts as absent; booleans, fractions
    /// and numbers out of range are refused).
    func count(_ key: String, maximum: Int) throws -> Int? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .number(let number) = value, number.rounded() == number, (0...Double(maximum)).contains(number) else {
            throw APIError.badRequest("invalid_body", "\(key) must be an integer from 0 to \(maximum)")
        }
        return Int(number)
    }

    /// An optional meta map field.
    func meta(_ key: String = "meta") throws -> [String: String]? {
        try Self.meta(fields[key], field: key)
    }

    static func meta(_ value: JSONValue?, field: String) throws -> [String: String]? {
        guard let value, value != .null else { return nil }
        guard case .object(let object) = value else { throw APIError.badRequest("invalid_meta", "\(field) must be an object of strings") }
        var meta: [String: String] = [:]
        for (key, entry) in object {
            guard case .string(let text) = entry else { throw APIError.badRequest("invalid_meta", "\(field).\(key.prefix(64)) must be a string") }
            meta[key] = text
        }
        try PresenceMeta.validate(meta, field: field)
        return meta
    }

    /// How far ahead of the server's clock a reported `connectedAt` counts: a later one counts as
    /// this far ahead, so that a node with a fast clock cannot win every reconnect race.
    static let connectedAtLead: TimeInterval = 60

    /// An optional `connectedAt` (RFC 3339 from the year 2000 on, up to microseconds; `null` counts
    /// as absent): when the node accepted the socket, which orders a late connect from another node
    /// against it. A time more than ``connectedAtLead`` ahead of `now` counts as `now` plus that.
    static func connectedAt(_ value: JSONValue?, field: String, now: Date) throws -> Date? {
        guard let value, value != .null else { return nil }
        guard case .string(let text) = value, text.utf8.count <= 40, let date = Timestamp.parse(text),
              date.timeIntervalSince1970 >= 946_684_800 else {
            throw APIError.badRequest("invalid_body", "\(field) must be an RFC 3339 timestamp from 2000 on, e.g. 2026-11-30T02:00:00.123456Z")
        }
        return min(date, now.addingTimeInterval(connectedAtLead))
    }
}
