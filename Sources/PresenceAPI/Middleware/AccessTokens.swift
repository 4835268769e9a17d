import Foundation

/// The bearer tokens the API accepts. Empty means authentication is off (loopback only).
struct AccessTokens: Sendable, Equatable {
    enum Scope: Sendable { case read, write }

    var read: [[UInt8]]
    var write: [[UInt8]]

    init(read: [String] = [], write: [String] = []) {
        self.read = read.filter { !$0.isEmpty }.map { Array($0.utf8) }
        self.write = write.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    var isEnabled: Bool { !read.isEmpty || !write.isEmpty }

    /// What `token` may do; every configured token is compared, each in constant time.
    func scope(of token: some StringProtocol) -> Scope? {
        let candidate = Array(token.utf8)
        var isWrite = false
        var isRead = false
        for known in write where Self.constantTimeEquals(known, candidate) { isWrite = true }
        for known in read where Self.constantTimeEquals(known, candidate) { isRead = true }
        return isWrite ? .write : isRead ? .read : nil
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference: UInt8 = a.count == b.count ? 0 : 1
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }

    /// Parses a token file: lines `read:TOKEN` or `write:TOKEN`; blank lines and `#` comments skipped.
    static func parse(file contents: String) throws -> (read: [String], write: [String]) {
        var read: [String] = []
        var write: [String] = []
        for (number, line) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if trimmed.hasPrefix("read:") { read.append(String(trimmed.dropFirst(5))) }
            else if trimmed.hasPrefix("write:") { write.append(String(trimmed.dropFirst(6))) }
            else { throw ConfigurationError("token file line \(number + 1): expected read:TOKEN or write:TOKEN") }
        }
        return (read, write)
    }
}
