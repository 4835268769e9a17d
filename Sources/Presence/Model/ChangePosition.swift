/// A position in the change stream: the last change read in each of its streams. Written as text
/// `i=ms-seq` joined by `,` (`0=1700000000000-3,4=1700000000001-0`), short enough for an SSE
/// `Last-Event-ID`; a stream not named is read from its start. An entry holds the changes of one
/// script call: `i=ms-seq.k` stops after its change `k` (0-based), `i=ms-seq` after all of it.
public struct ChangePosition: Sendable, Hashable, CustomStringConvertible {
    /// One change of one stream: its entry, and its place there.
    public struct Entry: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The stream's index (0–15).
        public var stream: Int
        /// The entry id's time part (Redis server clock, ms).
        public var milliseconds: Int
        /// The entry id's sequence part.
        public var sequence: Int
        /// The change's place in its entry (0-based); ``whole`` for the entry's last change,
        /// whose position has read all of the entry.
        public var index: Int

        /// The index of an entry's last change.
        public static let whole = Int.max

        /// Creates a value.
        public init(stream: Int, milliseconds: Int, sequence: Int, index: Int = Entry.whole) {
            self.stream = stream
            self.milliseconds = milliseconds
            self.sequence = sequence
            self.index = index
        }

        /// Parses `ms-seq` (a stream entry id: the whole entry) or `ms-seq.k` (its change `k`):
        /// runs of decimal digits, each fitting an `Int`. Readers parse one per change and
        /// subscriber: one pass over the bytes, no allocation.
        public init?(stream: Int, id: String) {
            var parts = (0, 0, 0)
            var digits = (0, 0, 0)
            var part = 0
            for byte in id.utf8 {
                if byte == UInt8(ascii: "-") && part == 0 || byte == UInt8(ascii: ".") && part == 1 {
                    part += 1
                    continue
                }
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                let value = part == 0 ? parts.0 : part == 1 ? parts.1 : parts.2
                let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
                let (next, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
                if overflow || overflow2 { return nil }
                switch part {
                case 0: (parts.0, digits.0) = (next, digits.0 + 1)
                case 1: (parts.1, digits.1) = (next, digits.1 + 1)
                default: (parts.2, digits.2) = (next, digits.2 + 1)
                }
            }
            guard part >= 1, digits.0 > 0, digits.1 > 0, part == 1 || (digits.2 > 0 && parts.2 < Self.whole) else { return nil }
            self.init(stream: stream, milliseconds: parts.0, sequence: parts.1, index: part == 1 ? Self.whole : parts.2)
        }

        /// The end of the entry before this one (reading after it starts at this entry).
        public var predecessor: Entry {
            var entry = self
            entry.index = Self.whole
            if sequence > 0 {
                entry.sequence -= 1
            } else {
                entry.milliseconds -= 1
                entry.sequence = Int.max
            }
            return entry
        }

        /// The stream entry's id as Redis writes it.
        public var entryID: String { "\(milliseconds)-\(sequence)" }
        /// `ms-seq`, or `ms-seq.k` for a change before its entry's last.
        public var id: String { index == Self.whole ? entryID : "\(entryID).\(index)" }
        /// `i=ms-seq` or `i=ms-seq.k`.
        public var description: String { "\(stream)=\(id)" }

        /// Whether this is at or before `other` in the same stream.
        func isAtOrBefore(_ other: Entry) -> Bool {
            (milliseconds, sequence, index) <= (other.milliseconds, other.sequence, other.index)
        }

        /// Orders by time, then stream, sequence and place: an approximation of the order across streams.
        public static func < (a: Entry, b: Entry) -> Bool {
            (a.milliseconds, a.stream, a.sequence, a.index) < (b.milliseconds, b.stream, b.sequence, b.index)
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
        return entry.isAtOrBefore(passed)
    }

    /// Moves past `entry`.
    public mutating func advance(past entry: Entry) { last[entry.stream] = entry.id }

    /// The `XRANGE` start that reads what follows this position in `stream`: after its entry when
    /// it read all of it, else from that entry (whose changes read already the reader drops).
    func rangeStart(_ stream: Int) -> String {
        guard let text = last[stream], let entry = Entry(stream: stream, id: text) else { return "-" }
        return entry.index == Entry.whole ? "(" + entry.entryID : entry.entryID
    }

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
