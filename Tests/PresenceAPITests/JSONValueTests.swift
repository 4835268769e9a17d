import Foundation
@testable import PresenceAPI
import Testing

@Suite("The request-body JSON reader (pure): RFC 8259, strict")
struct JSONValueTests {
    /// The reader's value as Foundation objects, to compare with `JSONSerialization`'s.
    static func foundation(_ value: JSONValue) -> NSObject {
        switch value {
        case .null: NSNull()
        case .bool(let bool): NSNumber(value: bool)
        case .number(let number): NSNumber(value: number)
        case .string(let string): string as NSString
        case .array(let array): array.map(foundation) as NSArray
        case .object(let object): object.mapValues(foundation) as NSDictionary
        }
    }

    static let valid = [
        #"{}"#, #"[]"#, #" {"a" : [1, -2, 3.5, 1e3, -0.5E-2, 0, true, false, null] } "#,
        #"{"events":[{"type":"connect","socketId":"s-1","userId":"u","meta":{"k":"v"},"connectedAt":"2026-11-30T02:00:00.123456Z"}]}"#,
        #"["\"\\\/\b\f\n\r\t", "\u00e9\u65E5", "\ud83c\udf89", "é日本🎉", "a\u0000b"]"#,
        #"{"a":1,"a":2}"#, "\t\r\n[\n1\n]\n", #"[[[[[[[[[[]]]]]]]]]]"#, #""plain""#, "12345678901234567890",
    ]

    @Test("valid documents read as JSONSerialization reads them", arguments: valid)
    func matchesFoundation(text: String) throws {
        let ours = Self.foundation(try JSONValue.parse(text))
        let theirs = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) as! NSObject
        #expect(ours == theirs)
    }

    static let invalid = [
        "", " ", "{", "}", "[1,]", #"{"a":1,}"#, #"{"a" 1}"#, #"{a:1}"#, "[01]", "[1.]", "[.5]", "[-]", "[1e]", "[+1]",
        "[NaN]", "[Infinity]", "[tru]", "[nul]", "[True]", #"["a"#, #"["\x"]"#, #"["\u12"]"#, #"["\ud83c"]"#,
        #"["\ud83cx"]"#, #"["\udf89"]"#, "[\"a\nb\"]", "[\"\t\"]", "[1] 2", "{} {}", "[1]x", "/* c */ []", "['a']",
    ]

    @Test("invalid documents are refused", arguments: invalid)
    func refused(text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(text) }
    }

    @Test("invalid UTF-8 inside a string is refused; nesting past the limit is refused, not a crash")
    func bytesAndDepth() throws {
        for bytes: [UInt8] in [[0x22, 0xC3, 0x28, 0x22], [0x22, 0xFF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0x5C, 0x6E, 0xC3, 0x22]] {
            #expect(throws: JSONValue.ParseError.self) { try bytes.withUnsafeBytes { try JSONValue.parse($0) } }
        }
        let limit = JSONValue.maximumDepth
        #expect(throws: Never.self) { try JSONValue.parse(String(repeating: "[", count: limit) + String(repeating: "]", count: limit)) }
        #expect(throws: JSONValue.ParseError.self) {
            try JSONValue.parse(String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1))
        }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(String(repeating: "[", count: 1_000_000)) }
    }
}
