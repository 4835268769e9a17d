import Foundation

/// Limits and encoding of the small string maps attached to nodes and sockets.
public enum PresenceMeta {
    /// Most entries in one map.
    public static let maximumEntries = 16
    /// Longest key, in UTF-8 bytes.
    public static let maximumKeyLength = 64
    /// Longest value, in UTF-8 bytes.
    public static let maximumValueLength = 1024

    /// Checks a meta map: at most 16 entries, keys 1–64 bytes and values up to 1,024 bytes of the
    /// characters ids may hold, `%` included (meta never appears in a URL path).
    /// - Throws: ``PresenceError`` with code ``PresenceError/Code/invalidMeta``.
    public static func validate(_ meta: [String: String], field: String = "meta") throws(PresenceError) {
        guard meta.count <= maximumEntries else {
            throw PresenceError(.invalidMeta, "\(field) has \(meta.count) entries; at most \(maximumEntries) are allowed")
        }
        for (key, value) in meta {
            guard (1...maximumKeyLength).contains(key.utf8.count), PresenceID.firstForbiddenScalar(key) == nil else {
                throw PresenceError(.invalidMeta, "\(field) key '\(key.prefix(32))' must be 1–\(maximumKeyLength) bytes of printable text")
            }
            guard value.utf8.count <= maximumValueLength else {
                throw PresenceError(.invalidMeta, "\(field).\(key) is \(value.utf8.count) bytes; at most \(maximumValueLength) are allowed")
            }
            if PresenceID.firstForbiddenScalar(value) != nil {
                throw PresenceError(.invalidMeta, "\(field).\(key) contains a control character")
            }
        }
    }

    /// Encodes a map as compact JSON with sorted keys; the empty map encodes as `""` (not stored).
    public static func encode(_ meta: [String: String]) -> String {
        if meta.isEmpty { return "" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a [String: String] cannot fail.
        return (try? encoder.encode(meta)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// Decodes what ``encode(_:)`` wrote (a flat JSON object of strings); `nil` when malformed.
    public static func decode(_ text: String) -> [String: String]? {
        if text.isEmpty { return [:] }
        return try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))
    }
}
