/// Which server a client talks to, Redis or Valkey and its release, and what follows from that:
/// the native conditional commands a writer may use instead of a Lua script.
///
/// Read from `INFO server` (see ``init(info:)``), which every release of both answers: Redis
/// reports `redis_version`; Valkey reports `server_name:valkey` and `valkey_version` besides a
/// `redis_version` that is only a compatibility claim (7.2.4 on Valkey 8 and 9), so the Valkey
/// fields win. `HELLO` is not used: it needs Redis 6, and a Valkey with
/// `extended-redis-compatibility yes` answers it as `redis` 7.2.4, hiding what it can do.
///
/// ``capabilities`` are derived from the product and version by the release that introduced each
/// command, not by probing: a server built without one, or one that renamed or forbade it by ACL,
/// still claims it, and a release candidate reporting the previous minor version (as Redis' do)
/// does not. A writer that meets an unknown-command error should fall back to its script.
public struct RedisServerInfo: Sendable, Hashable, CustomStringConvertible {
    /// The server software.
    public enum Product: String, Sendable, Hashable, CustomStringConvertible {
        /// Redis (redis.io).
        case redis
        /// Valkey (valkey.io), the fork of Redis 7.2.4.
        case valkey

        public var description: String { rawValue }
    }

    /// A release number, compared component by component: `7.0.15 < 7.2.4 < 8.0.0 < 10.0.0`.
    /// Development builds report `255.255.255` and so compare newer than every release.
    public struct Version: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The first component.
        public var major: Int
        /// The second component (0 when the server reported none).
        public var minor: Int
        /// The third component (0 when the server reported none).
        public var patch: Int

        /// Creates a version from its components.
        public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
            self.major = major
            self.minor = minor
            self.patch = patch
        }

        /// Parses `major[.minor[.patch]]` as servers report it (`9.1.2`); anything after a
        /// component's digits (`-rc1`) is ignored, and components past the third too.
        /// Returns `nil` when the text does not start with a number.
        public init?(_ text: some StringProtocol) {
            let components = text.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false).prefix(3)
                .map { Int($0.prefix { $0.isASCII && $0.isNumber }) }
            guard let major = components.first ?? nil else { return nil }
            self.init(major, components.count > 1 ? components[1] ?? 0 : 0, components.count > 2 ? components[2] ?? 0 : 0)
        }

        public static func < (lhs: Version, rhs: Version) -> Bool {
            (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
        }

        public var description: String { "\(major).\(minor).\(patch)" }
    }

    /// Native commands that can replace a Lua script, each present from a given release on.
    public struct Capabilities: OptionSet, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: Int

        public init(rawValue: Int) { self.rawValue = rawValue }

        /// `SET key value IFEQ expected`: set only while the key holds `expected` (Valkey 8.1,
        /// Redis 8.4).
        public static let setIfEqual = Capabilities(rawValue: 1 << 0)
        /// Delete a key only while it holds a given value: `DELIFEQ key value` (Valkey 9.0) or
        /// `DELEX key IFEQ value` (Redis 8.4). The two differ: build the command with
        /// ``RedisServerInfo/deleteIfEqual(key:value:)`` (``RedisServerInfo/conditionalDelete``
        /// says which).
        public static let deleteIfEqual = Capabilities(rawValue: 1 << 1)
        /// Per-field expiry of hash fields, `HPEXPIRE key milliseconds FIELDS count field…`
        /// (Redis 7.4, Valkey 9.0).
        public static let hashFieldTTL = Capabilities(rawValue: 1 << 2)
        /// `HSETEX key PX milliseconds FIELDS count field value…`: set hash fields with their expiry
        /// in one command (Redis 8.0, Valkey 9.0; Valkey also takes `NX`/`XX` before `FNX`/`FXX`,
        /// Redis does not, so the common form leaves them out).
        public static let hashSetWithTTL = Capabilities(rawValue: 1 << 3)

        /// Every capability with its name, in the order ``description`` lists them.
        private static let named: [(Capabilities, String)] = [
            (.setIfEqual, "setIfEqual"), (.deleteIfEqual, "deleteIfEqual"), (.hashFieldTTL, "hashFieldTTL"), (.hashSetWithTTL, "hashSetWithTTL"),
        ]

        public var description: String {
            "[" + Self.named.filter { contains($0.0) }.map(\.1).joined(separator: ", ") + "]"
        }
    }

    /// The command that deletes a key only while it holds a given value. Both answer 1 when they
    /// deleted the key and 0 when it was missing or held another value, and refuse a key that is
    /// not a string.
    public enum ConditionalDelete: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// `DELIFEQ key value` (Valkey 9.0).
        case delIfEq = "DELIFEQ"
        /// `DELEX key IFEQ value` (Redis 8.4; Valkey 9.2 has it too).
        case delExIfEq = "DELEX"

        /// The command deleting `key` only while it holds `value`.
        public func command(key: String, value: String) -> RedisCommand {
            switch self {
            case .delIfEq: RedisCommand("DELIFEQ", key, value)
            case .delExIfEq: RedisCommand("DELEX", key, "IFEQ", value)
            }
        }

        public var description: String { rawValue }
    }

    /// The server software.
    public let product: Product
    /// Its release (for Valkey, `valkey_version`, not the compatibility `redis_version`).
    public let version: Version
    /// The native commands it has (on a cluster: those every primary has).
    public let capabilities: Capabilities
    /// The conditional delete to use, `nil` when there is none (then ``capabilities`` lacks
    /// ``Capabilities/deleteIfEqual``). Valkey's own `DELIFEQ` is preferred where both exist.
    public let conditionalDelete: ConditionalDelete?
    /// Every conditional delete the server takes, preferred first (to find a cluster's common one).
    private let conditionalDeletes: [ConditionalDelete]

    /// Describes a release of `product`; its capabilities follow from `version`.
    public init(product: Product, version: Version) {
        let deletes = Self.conditionalDeletes(product, version)
        var capabilities = Capabilities()
        for (since, added) in Self.releases[product] ?? [] where version >= since { capabilities.formUnion(added) }
        self.init(product: product, version: version, capabilities: capabilities, conditionalDeletes: deletes)
    }

    private init(product: Product, version: Version, capabilities: Capabilities, conditionalDeletes: [ConditionalDelete]) {
        self.product = product
        self.version = version
        self.conditionalDeletes = conditionalDeletes
        conditionalDelete = conditionalDeletes.first
        // deleteIfEqual exactly when a command does it (a mixed cluster may have none in common).
        self.capabilities = conditionalDeletes.isEmpty ? capabilities : capabilities.union(.deleteIfEqual)
    }

    /// Reads the reply of `INFO server` (or of `INFO`): `server_name` and `valkey_version` for
    /// Valkey (Valkey 7.2 reports no `valkey_version`: its `redis_version` is its own), else
    /// `redis_version` for Redis. Servers that imitate Redis (KeyDB, Dragonfly) read as Redis of
    /// the version they claim.
    /// Returns `nil` when the text names no version.
    public init?(info: String) {
        var fields: [Substring: Substring] = [:]
        for line in info.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon]] = line[line.index(after: colon)...]
        }
        let valkey = fields["server_name"]?.lowercased() == "valkey" || fields["valkey_version"] != nil
        guard let text = (valkey ? fields["valkey_version"] : nil) ?? fields["redis_version"], let version = Version(text) else { return nil }
        self.init(product: valkey ? .valkey : .redis, version: version)
    }

    /// What every one of `servers` can do, for a Redis Cluster's primaries: a cluster upgraded
    /// node by node must use only what all its primaries have. The capabilities are those common
    /// to all, the conditional delete one that all take; the product and version are the oldest
    /// primary's (the lowest version; Redis before Valkey on a tie), for logs.
    /// Returns `nil` for no servers.
    public static func common(_ servers: some Sequence<RedisServerInfo>) -> RedisServerInfo? {
        var iterator = servers.makeIterator()
        guard var oldest = iterator.next() else { return nil }
        var capabilities = oldest.capabilities.subtracting(.deleteIfEqual)
        var deletes = oldest.conditionalDeletes
        while let server = iterator.next() {
            capabilities.formIntersection(server.capabilities)
            deletes.removeAll { !server.conditionalDeletes.contains($0) }
            if (server.version, server.product == .valkey ? 1 : 0) < (oldest.version, oldest.product == .valkey ? 1 : 0) { oldest = server }
        }
        return RedisServerInfo(product: oldest.product, version: oldest.version, capabilities: capabilities, conditionalDeletes: deletes)
    }

    /// The command deleting `key` only while it holds `value` on this server, `nil` when it has
    /// none (use a script then).
    public func deleteIfEqual(key: String, value: String) -> RedisCommand? {
        conditionalDelete?.command(key: key, value: value)
    }

    public var description: String { "\(product) \(version) \(capabilities)" }

    /// The release of each product that introduced each capability but ``Capabilities/deleteIfEqual``
    /// (which follows from `conditionalDeletes(_:_:)`).
    private static let releases: [Product: [(Version, Capabilities)]] = [
        .redis: [(Version(7, 4), .hashFieldTTL), (Version(8, 0), .hashSetWithTTL), (Version(8, 4), .setIfEqual)],
        .valkey: [(Version(8, 1), .setIfEqual), (Version(9, 0), [.hashFieldTTL, .hashSetWithTTL])],
    ]

    private static func conditionalDeletes(_ product: Product, _ version: Version) -> [ConditionalDelete] {
        switch product {
        case .redis: version >= Version(8, 4) ? [.delExIfEq] : []
        case .valkey: version >= Version(9, 2) ? [.delIfEq, .delExIfEq] : version >= Version(9, 0) ? [.delIfEq] : []
        }
    }
}
