/// Finds the current primary through Redis Sentinel, following the client procedure: ask the
/// sentinels in order with a short timeout, take the first answer, and move the sentinel that gave
/// it to the front. Distinguishes "no sentinel reachable" from "master name unknown".
/// Used only from the client's I/O thread.
struct SentinelResolver {
    private(set) var order: [RedisConfiguration.Endpoint]
    let setting: RedisConfiguration.Sentinel
    let clientName: String

    init(_ setting: RedisConfiguration.Sentinel, clientName: String) {
        self.setting = setting
        self.order = setting.sentinels
        self.clientName = clientName
    }

    /// The primary's address as the first reachable sentinel reports it.
    /// - Throws: ``RedisError`` ``RedisError/Code/noSentinel`` or ``RedisError/Code/unknownMaster``.
    mutating func resolve() throws(RedisError) -> RedisConfiguration.Endpoint {
        var failures: [String] = []
        var unknownAt: [String] = []
        for (index, sentinel) in order.enumerated() {
            let configuration = RedisConfiguration(
                endpoint: sentinel, password: setting.password, connectTimeout: setting.timeout, commandTimeout: setting.timeout,
                requirePrimary: false, clientName: clientName)
            do {
                let connection = try RedisConnection.connect(configuration, scripts: [])
                connection.append(RedisCommand("SENTINEL", "get-master-addr-by-name", setting.masterName))
                if setting.preferReplica { connection.append(RedisCommand("SENTINEL", "replicas", setting.masterName)) }
                let primary = try connection.readReply()
                let replicas = setting.preferReplica ? try connection.readReply() : .success(.null)
                switch primary {
                case .success(let value):
                    if let parts = value.array, parts.count == 2, let host = parts[0].string, let port = parts[1].int {
                        if index > 0 { order.insert(order.remove(at: index), at: 0) }
                        if case .success(let list) = replicas, let replica = Self.healthyReplica(list) { return replica }
                        return .tcp(host: host, port: port)
                    }
                    unknownAt.append("\(sentinel)")
                case .failure(let error):
                    failures.append("\(sentinel): \(error.message)")
                }
            } catch {
                failures.append("\(sentinel): \(error.message)")
            }
        }
        if !unknownAt.isEmpty {
            throw RedisError(.unknownMaster, "the sentinels (\(unknownAt.joined(separator: ", "))) know no master named '\(setting.masterName)'")
        }
        throw RedisError(.noSentinel, "no sentinel reachable: \(failures.joined(separator: "; "))")
    }

    /// A replica the sentinel sees up: one in sync with its primary first, else any that is up
    /// (the sentinel refreshes link status only every 10 s, so a fresh replica may still say `err`).
    static func healthyReplica(_ list: RedisValue) -> RedisConfiguration.Endpoint? {
        var fallback: RedisConfiguration.Endpoint?
        for entry in list.array ?? [] {
            let fields = entry.fieldMap
            let flags = (fields["flags"] ?? "").split(separator: ",")
            guard !flags.contains("s_down"), !flags.contains("o_down"), !flags.contains("disconnected"),
                  let host = fields["ip"], let port = fields["port"].flatMap(Int.init) else { continue }
            if fields["master-link-status"] == "ok" { return .tcp(host: host, port: port) }
            fallback = fallback ?? .tcp(host: host, port: port)
        }
        return fallback
    }
}
