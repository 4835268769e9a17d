import Hummingbird
import Presence

/// Path and query parameters, validated with the id rules.
enum Parameter {
    /// A path parameter holding an id: percent-decoded (the router leaves paths raw), then checked
    /// as UTF-8 against the id rules.
    static func id(_ context: some RequestContext, _ name: String) throws -> String {
        guard let raw = context.parameters.get(name) else {
            throw APIError.badRequest("invalid_id", "\(name) is missing")
        }
        guard let bytes = percentDecoded(raw) else {
            throw APIError.badRequest("invalid_id", "\(name) has malformed percent-encoding")
        }
        return try PresenceID.validated(bytes: bytes, field: name)
    }

    static func percentDecoded(_ text: some StringProtocol) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
