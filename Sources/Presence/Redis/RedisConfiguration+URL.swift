import Foundation

extension RedisConfiguration {
    /// Parses `redis://[[user]:password@]host[:port][/db]`, `unix:///path/to/socket[?db=N]` or
    /// `redis-sentinel://[password@]host1:26379,host2:26379/MASTER_NAME[?db=N]` (the password is
    /// used for the sentinels and the primary).
    ///
    /// `redis-cluster://[[user]:password@]host:port[,host:port…][?read-from=replicas]` names a Redis
    /// Cluster by seed nodes (``Cluster``).
    ///
    /// User and password may be percent-encoded. IPv6 hosts go in brackets (`redis://[::1]:6379`).
    /// - Throws: ``RedisError`` with code ``RedisError/Code/invalidConfiguration`` naming what is wrong.
    public init(url: String) throws {
        func invalid(_ why: String) -> RedisError {
            RedisError(.invalidConfiguration, "invalid Redis URL '\(Self.redacted(url))': \(why)")
        }
        if url.hasPrefix("redis-sentinel://") {
            var rest = Substring(url.dropFirst("redis-sentinel://".count))
            var password: String?
            if let at = rest.lastIndex(of: "@") {
                var credentials = rest[..<at]
                if let colon = credentials.firstIndex(of: ":") { credentials = credentials[credentials.index(after: colon)...] }
                password = try Self.percentDecoded(credentials) ?? { throw invalid("bad percent-encoding in the password") }()
                rest = rest[rest.index(after: at)...]
            }
            var database = 0
            if let query = rest.firstIndex(of: "?") {
                let parameter = rest[rest.index(after: query)...]
                rest = rest[..<query]
                guard parameter.hasPrefix("db="), let db = Int(parameter.dropFirst(3)), db >= 0 else {
                    throw invalid("unknown or malformed parameter '\(parameter)' (only db=N is supported)")
                }
                database = db
            }
            guard let slash = rest.firstIndex(of: "/") else { throw invalid("the master name is missing (…/MASTER_NAME)") }
            let name = String(rest[rest.index(after: slash)...])
            guard !name.isEmpty, !name.contains("/") else { throw invalid("the master name is missing (…/MASTER_NAME)") }
            var sentinels: [Endpoint] = []
            for item in rest[..<slash].split(separator: ",", omittingEmptySubsequences: false) {
                let parsed = try RedisConfiguration(url: "redis://" + item)
                guard case .tcp(let host, let port) = parsed.endpoint, !item.contains("@"), !item.contains("/") else {
                    throw invalid("each sentinel is host[:port]")
                }
                sentinels.append(.tcp(host: host, port: item.contains(":") && !item.hasSuffix("]") ? port : 26379))
            }
            guard !sentinels.isEmpty else { throw invalid("no sentinel given") }
            self.init(endpoint: sentinels[0], password: password, database: database,
                      sentinel: Sentinel(sentinels: sentinels, masterName: name, password: password))
            return
        }
        if url.hasPrefix("redis-cluster://") {
            var rest = Substring(url.dropFirst("redis-cluster://".count))
            var credentials = ""
            if let at = rest.lastIndex(of: "@") {
                credentials = String(rest[...at])
                rest = rest[rest.index(after: at)...]
            }
            var readFrom = Cluster.ReadFrom.primaries
            if let query = rest.firstIndex(of: "?") {
                let parameter = rest[rest.index(after: query)...]
                rest = rest[..<query]
                guard parameter.hasPrefix("read-from="), let parsed = Cluster.ReadFrom(rawValue: String(parameter.dropFirst(10))) else {
                    throw invalid("unknown or malformed parameter '\(parameter)' (only read-from=primaries|replicas is supported)")
                }
                readFrom = parsed
            }
            if rest.contains("/") { throw invalid("a Redis Cluster has only database 0: no /db") }
            var seeds: [Endpoint] = []
            var first: RedisConfiguration?
            for item in rest.split(separator: ",", omittingEmptySubsequences: false) {
                guard !item.isEmpty else { throw invalid("an empty seed node") }
                let parsed = try RedisConfiguration(url: "redis://" + (seeds.isEmpty ? credentials : "") + item)
                first = first ?? parsed
                seeds.append(parsed.endpoint)
            }
            guard let first else { throw invalid("no seed node given") }
            self.init(endpoint: seeds[0], username: first.username, password: first.password,
                      cluster: Cluster(seeds: seeds, readFrom: readFrom))
            return
        }
        if url.hasPrefix("unix://") {
            var rest = Substring(url.dropFirst("unix://".count))
            var database = 0
            if let query = rest.firstIndex(of: "?") {
                let parameters = rest[rest.index(after: query)...].split(separator: "&")
                rest = rest[..<query]
                for parameter in parameters {
                    let pair = parameter.split(separator: "=", maxSplits: 1)
                    guard pair.count == 2, pair[0] == "db", let db = Int(pair[1]), db >= 0 else {
                        throw invalid("unknown or malformed parameter '\(parameter)' (only db=N is supported)")
                    }
                    database = db
                }
            }
            guard rest.hasPrefix("/"), rest.count > 1 else { throw invalid("the socket path must be absolute") }
            self.init(endpoint: .unix(path: String(rest)), database: database)
            return
        }
        guard url.hasPrefix("redis://") else {
            throw invalid("the scheme must be redis://, unix://, redis-sentinel:// or redis-cluster://")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : try Self.percentDecoded(user) ?? { throw invalid("bad percent-encoding in the user") }()
                password = try Self.percentDecoded(credentials[credentials.index(after: colon)...])
                    ?? { throw invalid("bad percent-encoding in the password") }()
            } else {
                // redis://password@host, as many clients accept.
                password = try Self.percentDecoded(credentials) ?? { throw invalid("bad percent-encoding in the password") }()
            }
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let db = Int(path), db >= 0 else { throw invalid("the database must be a non-negative integer") }
                database = db
            }
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw invalid("unclosed '[' in the host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw invalid("unexpected text after the host") }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw invalid("the host is empty") }
        var port = 6379
        if let portText {
            guard let parsed = Int(portText), (1...65535).contains(parsed) else { throw invalid("the port must be 1-65535") }
            port = parsed
        }
        self.init(endpoint: .tcp(host: String(host), port: port), username: username, password: password, database: database)
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    public static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url.lastIndex(of: "@"), at > scheme.upperBound else { return url }
        let credentials = url[scheme.upperBound..<at]
        if let colon = credentials.firstIndex(of: ":") {
            return String(url[..<scheme.upperBound]) + credentials[..<colon] + ":***" + url[at...]
        }
        return String(url[..<scheme.upperBound]) + "***" + url[at...]
    }

    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                      let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
