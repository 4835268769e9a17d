import Presence
import PresenceTestSupport
import Testing

@Suite("Redis URLs")
struct RedisConfigurationTests {
    @Test("redis:// with user, password, port and database")
    func fullURL() throws {
        let configuration = try RedisConfiguration(url: "redis://alice:s%40cret@127.0.0.1:6380/3")
        #expect(configuration.endpoint == .tcp(host: "127.0.0.1", port: 6380))
        #expect(configuration.username == "alice")
        #expect(configuration.password == "s@cret")
        #expect(configuration.database == 3)
    }

    @Test("defaults: port 6379, database 0, no credentials; password-only form")
    func defaults() throws {
        let plain = try RedisConfiguration(url: "redis://localhost")
        #expect(plain.endpoint == .tcp(host: "localhost", port: 6379))
        #expect(plain.database == 0 && plain.username == nil && plain.password == nil)
        let passwordOnly = try RedisConfiguration(url: "redis://:pw@[::1]:7000")
        #expect(passwordOnly.endpoint == .tcp(host: "::1", port: 7000))
        #expect(passwordOnly.username == nil && passwordOnly.password == "pw")
    }

    @Test("unix:// with a database parameter")
    func unixURL() throws {
        let configuration = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=2")
        #expect(configuration.endpoint == .unix(path: "/run/redis/redis.sock"))
        #expect(configuration.database == 2)
    }

    @Test("redis-sentinel:// with a password, several sentinels and a master name")
    func sentinelURL() throws {
        let configuration = try RedisConfiguration(url: "redis-sentinel://pw@10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster?db=2")
        let sentinel = try #require(configuration.sentinel)
        #expect(sentinel.sentinels == [.tcp(host: "10.0.0.1", port: 26380), .tcp(host: "10.0.0.2", port: 26379), .tcp(host: "::1", port: 26381)])
        #expect(sentinel.masterName == "mymaster")
        #expect(sentinel.password == "pw" && configuration.password == "pw")
        #expect(configuration.database == 2)
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis-sentinel://h1:26379") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis-sentinel:///m") }
    }

    @Test("redis-cluster:// with seed nodes: the first is the endpoint; primaries by default")
    func clusterURL() throws {
        let configuration = try RedisConfiguration(url: "redis-cluster://127.0.0.1:7000,127.0.0.1:7001")
        let cluster = try #require(configuration.cluster)
        #expect(cluster.seeds == [.tcp(host: "127.0.0.1", port: 7000), .tcp(host: "127.0.0.1", port: 7001)])
        #expect(cluster.readFrom == .primaries)
        #expect(cluster.refreshInterval == .seconds(10))
        #expect(cluster.maximumAttempts == 6)
        #expect(configuration.endpoint == .tcp(host: "127.0.0.1", port: 7000))
        #expect(configuration.username == nil && configuration.password == nil)
        #expect(configuration.database == 0)
        #expect(configuration.sentinel == nil)
    }

    @Test("redis-cluster:// with user:password (used for every node) and read-from")
    func clusterURLCredentials() throws {
        let configuration = try RedisConfiguration(url: "redis-cluster://alice:s%40cret@h1:7000,h2:7001?read-from=replicas")
        let cluster = try #require(configuration.cluster)
        #expect(cluster.seeds == [.tcp(host: "h1", port: 7000), .tcp(host: "h2", port: 7001)])
        #expect(cluster.readFrom == .replicas)
        #expect(configuration.username == "alice")
        #expect(configuration.password == "s@cret")
        let passwordOnly = try RedisConfiguration(url: "redis-cluster://pw@h1:7000?read-from=primaries")
        #expect(passwordOnly.username == nil && passwordOnly.password == "pw")
        #expect(passwordOnly.cluster?.readFrom == .primaries)
        #expect(passwordOnly.cluster?.seeds == [.tcp(host: "h1", port: 7000)])
    }

    @Test("redis-cluster:// seeds: port 6379 when missing, IPv6 in brackets")
    func clusterURLSeeds() throws {
        let configuration = try RedisConfiguration(url: "redis-cluster://h1,[::1]:7002,[fe80::2],h4:7004")
        #expect(configuration.cluster?.seeds == [
            .tcp(host: "h1", port: 6379), .tcp(host: "::1", port: 7002), .tcp(host: "fe80::2", port: 6379), .tcp(host: "h4", port: 7004),
        ])
        #expect(configuration.endpoint == .tcp(host: "h1", port: 6379))
    }

    @Test("redis-cluster:// refuses a bad parameter, an empty seed, a database and bad seeds", arguments: [
        "redis-cluster://h1:7000?read-from=anywhere", "redis-cluster://h1:7000?db=1", "redis-cluster://h1:7000?read-from",
        "redis-cluster://h1:7000,,h2:7001", "redis-cluster://h1:7000,", "redis-cluster://", "redis-cluster://u:p@",
        "redis-cluster://h1:7000/0", "redis-cluster://h1:7000/", "redis-cluster://h1:7000,h2:7001/1?read-from=replicas",
        "redis-cluster://h1:0", "redis-cluster://h1:7000,h2:port", "redis-cluster://[::1:7000",
    ])
    func malformedClusterURL(url: String) {
        let error = #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("invalid Redis URL") == true)
    }

    @Test("a refused redis-cluster:// URL names the problem and hides the password")
    func clusterURLReasons() {
        func message(_ url: String) -> String {
            do { _ = try RedisConfiguration(url: url) } catch let error as RedisError { return error.message } catch { return "\(error)" }
            return ""
        }
        #expect(message("redis-cluster://h1:7000?read-from=anywhere").contains("read-from=primaries|replicas"))
        #expect(message("redis-cluster://h1:7000,,h2:7001").contains("an empty seed node"))
        #expect(message("redis-cluster://h1:7000/0").contains("no /db"))
        #expect(!message("redis-cluster://u:secret@h1:7000/0").contains("secret"))
    }

    @Test("malformed URLs are refused with a reason", arguments: [
        "http://localhost", "redis://", "redis://host:0", "redis://host:99999", "redis://host/x",
        "redis://host:port", "unix://relative.sock", "unix:///a.sock?db=x", "redis://[::1", "redis://u:%zz@host",
    ])
    func malformed(url: String) {
        #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
        do { _ = try RedisConfiguration(url: url) } catch let error as RedisError {
            #expect(error.code == .invalidConfiguration)
            #expect(!error.message.isEmpty)
        } catch { Issue.record("unexpected error \(error)") }
    }

    @Test("passwords never appear in redacted URLs")
    func redaction() {
        #expect(RedisConfiguration.redacted("redis://alice:secret@host:1/0") == "redis://alice:***@host:1/0")
        #expect(RedisConfiguration.redacted("redis://secret@host") == "redis://***@host")
        #expect(RedisConfiguration.redacted("redis://host") == "redis://host")
    }
}
