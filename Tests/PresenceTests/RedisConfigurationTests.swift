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
