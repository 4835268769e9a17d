/// A Redis Cluster's shards and which one owns each of the 16,384 hash slots, as `CLUSTER SHARDS`
/// reports them. A value: the router swaps in a new one on every refresh.
struct RedisClusterTopology: Sendable, Equatable {
    typealias Endpoint = RedisConfiguration.Endpoint

    /// One primary and its replicas.
    struct Shard: Sendable, Equatable {
        var primary: Endpoint
        /// Replicas reported `online`, in the server's order.
        var replicas: [Endpoint]
    }

    static let slotCount = 16_384

    private(set) var shards: [Shard]
    /// Slot → index in ``shards``; -1 where no shard serves the slot.
    private var owners: [Int16]
    /// Every replica, for telling a replica's connection from a primary's in O(1).
    let replicas: Set<Endpoint>

    init(shards: [Shard], ranges: [[ClosedRange<Int>]]) {
        self.shards = shards
        replicas = Set(shards.flatMap(\.replicas))
        owners = Array(repeating: -1, count: Self.slotCount)
        for (index, slots) in ranges.enumerated() {
            for range in slots where range.lowerBound >= 0 && range.upperBound < Self.slotCount {
                for slot in range { owners[slot] = Int16(index) }
            }
        }
    }

    /// The shard serving `slot`, if any.
    func shard(ofSlot slot: Int) -> Shard? {
        let owner = owners[slot]
        return owner < 0 ? nil : shards[Int(owner)]
    }

    /// The primaries, one per shard that serves at least one slot.
    var primaries: [Endpoint] {
        var serving = Set<Int16>()
        for owner in owners where owner >= 0 { serving.insert(owner) }
        return shards.indices.filter { serving.contains(Int16($0)) }.map { shards[$0].primary }
    }

    /// How many slots no shard serves.
    var uncoveredSlots: Int { owners.lazy.filter { $0 < 0 }.count }

    /// Records a `MOVED`: `slot` is now served by `endpoint`. Returns `false` when that endpoint is
    /// no known primary (a refresh must learn it).
    mutating func moved(slot: Int, to endpoint: Endpoint) -> Bool {
        guard (0..<Self.slotCount).contains(slot), let index = shards.firstIndex(where: { $0.primary == endpoint }) else { return false }
        owners[slot] = Int16(index)
        return true
    }

    /// Parses a `CLUSTER SHARDS` reply (Redis 7): each shard a map of `slots` (start, end pairs)
    /// and `nodes` (maps with `ip`/`endpoint`, `port`/`tls-port`, `role` and `health`). A shard
    /// whose primary is not `online` serves nothing: its slots are unavailable until a replica is
    /// promoted. `seed` names the host to use when a node reports `?` or an empty endpoint.
    /// - Throws: ``RedisError`` ``RedisError/Code/protocolError`` for a malformed reply.
    static func parse(shards reply: RedisValue, seedHost: String) throws(RedisError) -> RedisClusterTopology {
        guard let list = reply.array else { throw RedisError(.protocolError, "CLUSTER SHARDS answered \(reply)") }
        var shards: [Shard] = []
        var ranges: [[ClosedRange<Int>]] = []
        for entry in list {
            let fields = pairs(entry)
            var slots: [ClosedRange<Int>] = []
            let bounds = (fields["slots"]?.array ?? []).compactMap(\.int)
            for pair in stride(from: 0, to: bounds.count - 1, by: 2) where bounds[pair] <= bounds[pair + 1] {
                slots.append(bounds[pair]...bounds[pair + 1])
            }
            var primary: Endpoint?
            var replicas: [Endpoint] = []
            var loading: [Endpoint] = []
            for node in fields["nodes"]?.array ?? [] {
                let info = pairs(node)
                guard let port = info["port"]?.int, port > 0 else { continue }
                var host = info["endpoint"]?.string ?? info["ip"]?.string ?? ""
                if host.isEmpty || host == "?" { host = info["ip"]?.string ?? seedHost }
                if host.isEmpty || host == "?" { host = seedHost }
                let endpoint = Endpoint.tcp(host: host, port: port)
                let online = info["health"]?.string == "online"
                switch info["role"]?.string {
                case "master": if online { primary = endpoint }
                case "replica", "slave":
                    if online { replicas.append(endpoint) } else if info["health"]?.string == "loading" { loading.append(endpoint) }
                default: break
                }
            }
            guard let primary else { continue }
            // Redis 7.0 calls a replica `loading` while its replication offset is 0, which a
            // synced replica of an empty primary is: used when no replica is `online` (one that
            // really loads answers LOADING, and its reads go to the primary).
            shards.append(Shard(primary: primary, replicas: replicas.isEmpty ? loading : replicas))
            ranges.append(slots)
        }
        return RedisClusterTopology(shards: shards, ranges: ranges)
    }

    private static func pairs(_ value: RedisValue) -> [String: RedisValue] {
        let items = value.array ?? []
        var result: [String: RedisValue] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let key = items[index].string { result[key] = items[index + 1] }
        }
        return result
    }
}
