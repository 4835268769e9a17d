import Foundation
import Logging
import Presence

/// Writes a line unbuffered, so progress shows when piped and survives a crash.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// A machine-readable result line for `scripts/bench`: `RESULT name value`.
func result(_ name: String, _ value: Double) {
    say("RESULT \(name) \(value)")
}

/// Bench arguments by position, with defaults.
struct BenchArguments {
    let values: [String]
    init(_ values: [String]) { self.values = values }
    func redis() throws -> RedisConfiguration { try RedisConfiguration(url: values[0]) }
    func int(_ position: Int, _ fallback: Int) -> Int {
        position < values.count ? Int(values[position]) ?? fallback : fallback
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// `base` with the change stream as `PRESENCE_CHANGES` says (`off` turns it off; `scripts/bench`
/// keeps it off but in row 16, which compares both).
func benchConfiguration(_ base: PresenceConfiguration = PresenceConfiguration()) -> PresenceConfiguration {
    var configuration = base
    configuration.changes = ProcessInfo.processInfo.environment["PRESENCE_CHANGES"] != "off"
    return configuration
}

/// A quiet logger for bench clients and nodes.
func benchLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .warning
    return logger
}

extension RedisClient {
    /// Commands Redis has executed since its stats were reset, scripts' inner calls included
    /// (summed over a cluster's primaries).
    func executedCommands() async throws -> Int {
        var total = 0
        for primary in try await primaryClients() {
            let info = try await primary.send("INFO", "commandstats").string ?? ""
            total += info.split(separator: "\r\n").reduce(0) { sum, line in
                guard let range = line.range(of: "calls=") else { return sum }
                return sum + (Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0)
            }
        }
        return total
    }

    /// Redis `used_memory`, bytes (summed over a cluster's primaries).
    func usedMemory() async throws -> Int {
        var total = 0
        for primary in try await primaryClients() {
            let info = try await primary.send("INFO", "memory").string ?? ""
            let line = info.split(separator: "\r\n").first { $0.hasPrefix("used_memory:") } ?? ""
            total += Int(line.dropFirst("used_memory:".count)) ?? 0
        }
        return total
    }
}

/// A random id of `length` characters from [a-z0-9].
func randomID(_ length: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    return randomID(length, using: &generator)
}

/// A random id of `length` characters from [a-z0-9], drawn from `generator` (ids made by the
/// hundred thousand take a fast seeded generator rather than one system call per character).
func randomID(_ length: Int, using generator: inout some RandomNumberGenerator) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
    return String(decoding: (0..<length).map { _ in alphabet.randomElement(using: &generator)! }, as: UTF8.self)
}

/// A fast pseudo-random generator (SplitMix64) seeded once from the system, for bench ids.
struct SplitMix64: RandomNumberGenerator {
    private var state = UInt64.random(in: .min ... .max)
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// CPU time this process has used so far (user + system), seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
