/// A JSON value (RFC 8259) read from a request body by ``JSONValue/parse(_:)``: one pass over
/// the bytes, no Foundation bridging. Reading a 1,000-event batch through `JSONSerialization` and
/// casting its `NSObject`s cost more server CPU than the Redis work the batch asks for.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Members; a repeated name keeps its last value.
    case object([String: JSONValue])

    /// Nesting beyond this is refused: request bodies are flat, and the reader recurses.
    static let maximumDepth = 32

    /// Why a text is not one JSON value (the offset, for a message).
    struct ParseError: Error, Equatable {
        let offset: Int
    }

    /// Parses one JSON value, surrounded by whitespace only. Strict: no trailing commas, comments,
    /// leading zeros, unescaped control characters, lone surrogates or invalid UTF-8.
    static func parse(_ buffer: UnsafeRawBufferPointer) throws(ParseError) -> JSONValue {
        var reader = Reader(bytes: buffer.assumingMemoryBound(to: UInt8.self))
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.offset == buffer.count else { throw reader.failure }
        return value
    }

    /// ``parse(_:)-(UnsafeRawBufferPointer)`` of a string's UTF-8.
    static func parse(_ text: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { try parse(UnsafeRawBufferPointer($0)) }
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var offset = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var failure: ParseError { ParseError(offset: offset) }

        mutating func skipWhitespace() {
            while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
        }

        mutating func value(depth: Int) throws(ParseError) -> JSONValue {
            skipWhitespace()
            guard offset < bytes.count else { throw failure }
            switch bytes[offset] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return .number(try number())
            }
        }

        mutating func object(depth: Int) throws(ParseError) -> JSONValue {
            guard depth <= JSONValue.maximumDepth else { throw failure }
            offset += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") {
                offset += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw failure }
                let name = try string()
                skipWhitespace()
                try expect(":")
                members[name] = try value(depth: depth)
                skipWhitespace()
                guard offset < bytes.count else { throw failure }
                if bytes[offset] == UInt8(ascii: "}") {
                    offset += 1
                    return .object(members)
                }
                try expect(",")
            }
        }

        mutating func array(depth: Int) throws(ParseError) -> JSONValue {
            guard depth <= JSONValue.maximumDepth else { throw failure }
            offset += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") {
                offset += 1
                return .array(elements)
            }
            while true {
                elements.append(try value(depth: depth))
                skipWhitespace()
                guard offset < bytes.count else { throw failure }
                if bytes[offset] == UInt8(ascii: "]") {
                    offset += 1
                    return .array(elements)
                }
                try expect(",")
            }
        }

        mutating func expect(_ character: Unicode.Scalar) throws(ParseError) {
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: character) else { throw failure }
            offset += 1
        }

        mutating func literal(_ word: StaticString) throws(ParseError) {
            let count = word.utf8CodeUnitCount
            guard bytes.count - offset >= count,
                  word.withUTF8Buffer({ $0.elementsEqual(bytes[offset..<offset + count]) }) else { throw failure }
            offset += count
        }

        /// A string at `"`: the common case (no escape) is one validated copy of its bytes.
        mutating func string() throws(ParseError) -> String {
            offset += 1
            let start = offset
            while offset < bytes.count {
                let byte = bytes[offset]
                if byte == UInt8(ascii: "\"") {
                    guard let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self) else { throw failure }
                    offset += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                guard byte >= 0x20 else { throw failure }
                offset += 1
            }
            var text = Array(bytes[start..<offset])
            while offset < bytes.count {
                let byte = bytes[offset]
                switch byte {
                case UInt8(ascii: "\""):
                    offset += 1
                    guard let string = String(validating: text, as: UTF8.self) else { throw failure }
                    return string
                case UInt8(ascii: "\\"):
                    offset += 1
                    guard offset < bytes.count else { throw failure }
                    let escaped = bytes[offset]
                    offset += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escaped)
                    case UInt8(ascii: "b"): text.append(0x08)
                    case UInt8(ascii: "f"): text.append(0x0C)
                    case UInt8(ascii: "n"): text.append(0x0A)
                    case UInt8(ascii: "r"): text.append(0x0D)
                    case UInt8(ascii: "t"): text.append(0x09)
                    case UInt8(ascii: "u"): text.append(contentsOf: try escapedScalar().utf8)
                    default: throw failure
                    }
                case 0..<0x20:
                    throw failure
                default:
                    text.append(byte)
                    offset += 1
                }
            }
            throw failure
        }

        /// After `\u`: four hex digits, or a surrogate pair as two escapes.
        mutating func escapedScalar() throws(ParseError) -> String {
            let first = try hex4()
            var value = first
            if (0xD800..<0xDC00).contains(first) {
                guard bytes.count - offset >= 6, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else { throw failure }
                offset += 2
                let second = try hex4()
                guard (0xDC00..<0xE000).contains(second) else { throw failure }
                value = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            guard let scalar = Unicode.Scalar(value) else { throw failure }  // a lone low surrogate
            return String(Character(scalar))
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard bytes.count - offset >= 4 else { throw failure }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[offset]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw failure
                }
                value = value << 4 | UInt32(digit)
                offset += 1
            }
            return value
        }

        /// `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`
        mutating func number() throws(ParseError) -> Double {
            let start = offset
            func digits(_ reader: inout Reader) -> Int {
                let from = reader.offset
                while reader.offset < reader.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(reader.bytes[reader.offset]) {
                    reader.offset += 1
                }
                return reader.offset - from
            }
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            let integerStart = offset
            let integerDigits = digits(&self)
            guard integerDigits > 0, integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { throw failure }
            if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
                offset += 1
                guard digits(&self) > 0 else { throw failure }
            }
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "e") || bytes[offset] == UInt8(ascii: "E") {
                offset += 1
                if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") { offset += 1 }
                guard digits(&self) > 0 else { throw failure }
            }
            guard let value = Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)) else { throw failure }
            return value
        }
    }
}
