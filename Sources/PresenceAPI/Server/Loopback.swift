#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which hosts are this machine's loopback: where an unauthenticated API may listen, and the only
/// names a browser may use to reach it.
enum Loopback {
    /// Whether `host` (a name or an address, IPv6 without brackets) is loopback: `localhost` in any
    /// case, an IPv4 address in 127.0.0.0/8 in dotted-quad form, or the IPv6 address ::1 in any
    /// spelling (`0:0:0:0:0:0:0:1`).
    ///
    /// Not loopback: other names, even `127.0.0.1.example.com` or `foo.localhost` (DNS decides
    /// where they point), the short IPv4 forms `127.1` and `0x7f.0.0.1`, `0.0.0.0` (every
    /// interface), and IPv4-mapped IPv6 addresses such as `::ffff:127.0.0.1`: one spelling per
    /// loopback address keeps the rule easy to audit; use 127.0.0.1.
    static func isLoopback(_ host: some StringProtocol) -> Bool {
        let host = String(host)
        if host.lowercased() == "localhost" { return true }
        var address = [UInt8](repeating: 0, count: 16)  // in_addr or in6_addr, network byte order
        if inet_pton(AF_INET, host, &address) == 1 {
            return address[0] == 127
        }
        if inet_pton(AF_INET6, host, &address) == 1 {
            return address[..<15].allSatisfy { $0 == 0 } && address[15] == 1
        }
        return false
    }
}
