import Foundation
import Hummingbird
import Presence
@testable import PresenceAPI
import Testing

@Suite("Hand-written JSON of the hot read paths (pure)")
struct JSONTextTests {
    static let sockets: [SocketResponse] = [
        SocketResponse(socketID: "plain", socket: nil),
        SocketResponse(socketID: "s\"q\\b/\n\r\t\u{1}\u{1F}é日本🎉", socket: PresenceSocket(
            socketID: "x", nodeID: "node \"1\"", nodeIncarnation: "i", nodeAddress: "http://127.0.0.1:9/a?b=c&d",
            userID: nil, connectedAt: Date(timeIntervalSince1970: 1_795_772_629.123_9), meta: [:])),
        SocketResponse(socketID: "with-user", socket: PresenceSocket(
            socketID: "x", nodeID: "n", nodeIncarnation: "i", nodeAddress: "",
            userID: "u\u{7F}\u{2028}", connectedAt: Date(timeIntervalSince1970: 0), meta: ["b": "2\n", "a": "1", "\"k\"": "v"])),
        SocketResponse(socketID: "stale", socket: PresenceSocket(
            socketID: "x", nodeID: "n", nodeIncarnation: "i", nodeAddress: "a",
            userID: "u", connectedAt: Date(timeIntervalSince1970: 1_700_000_000.999_9), meta: ["k": "v"]), alive: false),
    ]

    @Test("a socket written by hand parses to the same object as JSONEncoder's", arguments: sockets)
    func sameObject(socket: SocketResponse) throws {
        var json = JSONText()
        socket.write(to: &json)
        let byHand = try JSONSerialization.jsonObject(with: Data(json.bytes)) as? NSDictionary
        let encoded = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(socket)) as? NSDictionary
        #expect(byHand != nil)
        #expect(byHand == encoded)
    }

    @Test("timestamps: ISO8601FormatStyle's date and time, milliseconds truncated", arguments: [
        0, 1, 0.999_9, 1_795_772_629.123_9, 1_700_000_000.5, 951_782_400.001, 4_102_444_799.999,
    ])
    func timestamps(seconds: Double) {
        let milliseconds = Int((seconds * 1000).rounded(.down))
        let whole = Date(timeIntervalSince1970: Double(milliseconds / 1000))
        let expected = whole.formatted(Date.ISO8601FormatStyle(timeZone: .gmt)).dropLast() + String(format: ".%03dZ", milliseconds % 1000)
        #expect(Timestamp.string(Date(timeIntervalSince1970: seconds)) == expected)
    }

    @Test("reported times: RFC 3339 with up to microseconds and any offset; anything else is nil", arguments: [
        ("2026-11-30T02:00:00Z", 1_796_004_000.0),
        ("2026-11-30T02:00:00.5Z", 1_796_004_000.5),
        ("2026-11-30T02:00:00.123456Z", 1_796_004_000.123456),
        ("2026-11-30t03:30:00.250+01:30", 1_796_004_000.25),
        ("2026-11-29T21:00:00-05:00", 1_796_004_000.0),
        ("2024-02-29T00:00:00Z", 1_709_164_800.0),
    ])
    func parsesReportedTimes(text: String, seconds: Double) throws {
        let date = try #require(Timestamp.parse(text))
        #expect(abs(date.timeIntervalSince1970 - seconds) < 1e-6)
    }

    @Test("reported times that are not RFC 3339 are refused", arguments: [
        "", "2026-11-30", "2026-11-30T02:00:00", "2026-11-30T02:00:00.Z", "2026-11-30T02:00:00.1234567Z",
        "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-30T24:00:00Z", "2026-11-30T02:00:00+1:00",
        "2026-11-30 02:00:00Z", "2026-11-30T02:00:00Zjunk", "２０２６-11-30T02:00:00Z",
    ])
    func refusesOtherTimes(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test("timestamps outside four-digit years neither crash nor wrap", arguments: [-1e12, -62_200_000_000, 253_402_300_800, 1e13])
    func farTimestamps(seconds: Double) {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(Timestamp.string(date) == date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)))
    }
}
