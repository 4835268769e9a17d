import Glibc

/// Free TCP ports on 127.0.0.1 for cluster nodes: each port P with its bus port P + 10000 free too.
enum LoopbackPorts {
    /// Redis Cluster's bus port offset.
    static let busOffset = 10000

    /// `count` distinct ports P, none in `excluding`, where both P and P + 10000 could be bound just
    /// now. The kernel picks P (an ephemeral port); all of them stay bound until all are found, so
    /// they differ. Another process may still take one before redis-server binds it: callers retry.
    /// - Throws: ``LocalRedisClusterError`` `startFailed` when sockets cannot be made, or no pair
    ///   was found in many tries.
    static func clusterPorts(_ count: Int, excluding: Set<Int> = []) throws -> [Int] {
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        var ports: [Int] = []
        var tries = 0
        while ports.count < count {
            tries += 1
            guard tries <= 1000 else {
                throw LocalRedisClusterError(.startFailed, "found no free loopback port whose bus port (+\(busOffset)) is free too in 1000 tries")
            }
            let (fd, port) = try bind(0)
            guard port + busOffset <= 65535, !excluding.contains(port) else {
                close(fd)
                continue
            }
            guard let bus = try? bind(port + busOffset) else {
                close(fd)
                continue
            }
            held += [fd, bus.fd]
            ports.append(port)
        }
        return ports
    }

    /// Binds a TCP socket to 127.0.0.1:`port` (0: any free port).
    /// - Returns: the socket and the port it got.
    private static func bind(_ port: Int) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw LocalRedisClusterError(.startFailed, "socket() failed: \(String(cString: strerror(errno)))")
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw LocalRedisClusterError(.startFailed, "cannot bind 127.0.0.1:\(port): \(reason)")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
