/// A position in the change stream: the last entry read in each of its streams. Written as text
/// `i=ms-seq` joined by `,` (`0=1700000000000-3,4=1700000000001-0`), short enough for an SSE
/// `Last-Event-ID`; a stream not named is read from its start.
public struct ChangePosition: Sendable, Hashable, CustomStringConvertible {
    /// One entry of one stream.
    public struct Entry: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The stream's index (0–15).
        public var stream: Int
        /// The entry id's time part (Redis server clock, ms).
        public var milliseconds: Int
        /// The entry id's sequence part.
        public var sequence: Int

        /// Parses a stream entry id `ms-seq` (two runs of decimal digits, each fitting an `Int`).
        /// Readers parse one per change and subscriber: one pass over the bytes, no allocation.
        public init?(stream: Int, id: String) {
            var parts = (0, 0)
            var digits = (0, 0)
            var second = false
            for byte in id.utf8 {
                if byte == UInt8(ascii: "-"), !second {
                    second = true
                    continue
                }
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                let value = second ? parts.1 : parts.0
                let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
                let (next, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
                if overflow || overflow2 { return nil }
                if second {
                    parts.1 = next
                    digits.1 += 1
                } else {
                    parts.0 = next
                    digits.0 += 1
                }
            }
            guard second, digits.0 > 0, digits.1 > 0 else { return nil }
            self.stream = stream
            self.milliseconds = parts.0
            self.sequence = parts.1
        }

        /// The largest id before this one (reading after it starts at this entry).
        public var predecessor: Entry {
            var entry = self
            if sequence > 0 {
                entry.sequence -= 1
            } else {
                entry.milliseconds -= 1
                entry.sequence = Int.max
            }
            return entry
        }

        /// The entry id as Redis writes it.
        public var id: String { "\(milliseconds)-\(sequence)" }
        /// `i=ms-seq`.
        public var description: String { "\(stream)=\(id)" }

        /// Orders by time, then stream and sequence: an approximation of the order across streams.
        public static func < (a: Entry, b: Entry) -> Bool {
            (a.milliseconds, a.stream, a.sequence) < (b.milliseconds, b.stream, b.sequence)
        }
    }

    /// Stream index → the id of the last entry read there.
    public var last: [Int: String]

    /// The start of every stream.
    public init() { last = [:] }

    /// Parses the text form. `nil` when malformed.
    public init?(_ text: String) {
        last = [:]
        if text.isEmpty { return }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pair = part.split(separator: "=", omittingEmptySubsequences: false)
            guard pair.count == 2, let stream = Int(pair[0]), (0..<ChangeStreams.clusterCount).contains(stream),
                  Entry(stream: stream, id: String(pair[1])) != nil else { return nil }
            last[stream] = String(pair[1])
        }
    }

    /// Whether `entry` is at or before this position in its stream (read already, by a reader at
    /// this position): what a reader joining a live feed after reading history skips.
    public func hasPassed(_ entry: Entry) -> Bool {
        guard let text = last[entry.stream], let passed = Entry(stream: entry.stream, id: text) else { return false }
        return (entry.milliseconds, entry.sequence) <= (passed.milliseconds, passed.sequence)
    }

    /// Moves past `entry`.
    public mutating func advance(past entry: Entry) { last[entry.stream] = entry.id }

    /// Moves, in every stream, at least as far as `other`: what a reader that has read everything
    /// up to `other` may claim.
    public mutating func advance(to other: ChangePosition) {
        for (stream, id) in other.last {
            guard let entry = Entry(stream: stream, id: id), !hasPassed(entry) else { continue }
            last[stream] = id
        }
    }

    /// The text form.
    public var description: String { last.keys.sorted().map { "\($0)=\(last[$0]!)" }.joined(separator: ",") }
}
