import Foundation

/// RFC 3339 UTC timestamps with milliseconds, as every API field uses.
enum Timestamp {
    static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }
}
