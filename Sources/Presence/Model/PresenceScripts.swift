/// The Lua scripts of the layout. Each touches only the keys it receives in `KEYS`, all in one
/// hash slot; times come from the Redis server's clock (`TIME`), never from a caller's.
/// Composite values separate their parts with U+001F (unit separator), which ids cannot contain.
public enum PresenceScripts {
    static let now = """
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
        local function ms(x) return string.format('%.0f', x) end
        """

    /// Registers or heartbeats a node. KEYS: table, node record. ARGV: node id, incarnation,
    /// ttl ms, retention ms, address (`""` keeps), startedAt ms, socket count (`-1` keeps),
    /// user count (`-1` keeps), meta JSON (`""` keeps).
    /// Returns `{status, nowMs, expiresAtMs}`; status is `ok` (same incarnation, was alive), `new`
    /// (no record: first start or Redis lost its state), `revived` (same incarnation, had expired)
    /// or `replaced` (another incarnation was registered). Anything but `ok` means the caller must
    /// write all its sockets again. Entries of nodes dead longer than the retention are pruned.
    public static let heartbeat = RedisScript(name: "presence_heartbeat", source: now + """

        local ttl = tonumber(ARGV[3])
        local retention = tonumber(ARGV[4])
        local previous = redis.call('HMGET', KEYS[2], 'incarnation', 'expiresAt')
        local status = 'ok'
        if not previous[1] then status = 'new'
        elseif previous[1] ~= ARGV[2] then status = 'replaced'
        elseif tonumber(previous[2] or '0') <= now then status = 'revived' end
        local expiresAt = now + ttl
        local fields = {'incarnation', ARGV[2], 'startedAt', ARGV[6], 'lastHeartbeat', ms(now),
            'expiresAt', ms(expiresAt), 'ttl', ARGV[3]}
        if ARGV[5] ~= '' then fields[#fields + 1] = 'address'; fields[#fields + 1] = ARGV[5] end
        if ARGV[7] ~= '-1' then fields[#fields + 1] = 'socketCount'; fields[#fields + 1] = ARGV[7] end
        if ARGV[8] ~= '-1' then fields[#fields + 1] = 'userCount'; fields[#fields + 1] = ARGV[8] end
        if ARGV[9] ~= '' then fields[#fields + 1] = 'meta'; fields[#fields + 1] = ARGV[9] end
        redis.call('HSET', KEYS[2], unpack(fields))
        redis.call('PEXPIRE', KEYS[2], ttl + retention)
        local address = redis.call('HGET', KEYS[2], 'address') or ''
        redis.call('HSET', KEYS[1], ARGV[1], ms(expiresAt) .. '\\31' .. ARGV[2] .. '\\31' .. address)
        local entries = redis.call('HGETALL', KEYS[1])
        for i = 1, #entries, 2 do
            local e = tonumber(string.match(entries[i + 1], '^(%d+)'))
            if e == nil or e + retention < now then redis.call('HDEL', KEYS[1], entries[i]) end
        end
        redis.call('PEXPIRE', KEYS[1], math.max(redis.call('PTTL', KEYS[1]), ttl + retention))
        return {status, ms(now), ms(expiresAt)}
        """)

    /// A node leaves: its table entry and record go, so its sockets read dead at once.
    /// KEYS: table, node record. ARGV: node id, incarnation (`""` for any). Returns 1, or 0 when
    /// the node is not registered or another incarnation holds the record (it is left alone).
    public static let leave = RedisScript(name: "presence_leave", source: """
        local entry = redis.call('HGET', KEYS[1], ARGV[1])
        local incarnation = redis.call('HGET', KEYS[2], 'incarnation')
        if entry then incarnation = string.match(entry, '^%d+\\31([^\\31]*)\\31') end
        if not incarnation then return 0 end
        if ARGV[2] ~= '' and incarnation ~= ARGV[2] then return 0 end
        redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('DEL', KEYS[2])
        return 1
        """)

    /// The sweeper forgets a dead node. KEYS: table, node record. ARGV: node id, the table value
    /// seen dead. Returns 1, or 0 when the entry changed meanwhile (the node came back).
    public static let forget = RedisScript(name: "presence_forget", source: """
        if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
        redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('DEL', KEYS[2])
        return 1
        """)

    /// Writes a socket record, replacing any previous one unless another node holds it with a
    /// later `connectedAt` (a stale report must not displace the newer connection, or that node's
    /// coming disconnect would then delete it). KEYS: socket. ARGV: node id, incarnation, user id
    /// (`""` none), connectedAt µs, meta JSON (`""` none), ttl ms.
    /// Returns 1 when the socket was not already held by this node incarnation, 0 when it was
    /// (record replaced), -1 when ignored as stale.
    public static let connect = RedisScript(name: "presence_connect", source: """
        local previous = redis.call('HMGET', KEYS[1], 'n', 'i', 't')
        if previous[1] and previous[1] ~= ARGV[1] and tonumber(previous[3] or '0') > tonumber(ARGV[4]) then return -1 end
        redis.call('DEL', KEYS[1])
        local fields = {'n', ARGV[1], 'i', ARGV[2], 't', ARGV[4]}
        if ARGV[3] ~= '' then fields[#fields + 1] = 'u'; fields[#fields + 1] = ARGV[3] end
        if ARGV[5] ~= '' then fields[#fields + 1] = 'm'; fields[#fields + 1] = ARGV[5] end
        redis.call('HSET', KEYS[1], unpack(fields))
        redis.call('PEXPIRE', KEYS[1], ARGV[6])
        if previous[1] == ARGV[1] and previous[2] == ARGV[2] then return 0 end
        return 1
        """)

    /// Deletes a socket record only if the given node holds it. KEYS: socket. ARGV: node id,
    /// incarnation (`""` for any incarnation of that node). Returns `{incarnation, user}` of the
    /// deleted record, or nil when the socket is absent or held by another node.
    public static let disconnect = RedisScript(name: "presence_disconnect", source: """
        local record = redis.call('HMGET', KEYS[1], 'n', 'i', 'u')
        if record[1] ~= ARGV[1] then return false end
        if ARGV[2] ~= '' and record[2] ~= ARGV[2] then return false end
        redis.call('DEL', KEYS[1])
        return {record[2] or '', record[3] or ''}
        """)

    /// Adds socket ids to a node's set and keeps its TTL at least `ttl`. KEYS: node sockets.
    /// ARGV: ttl ms, socket ids…. Returns the set's size.
    public static let indexAdd = RedisScript(name: "presence_index_add", source: """
        for i = 2, #ARGV, 1000 do
            redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
        end
        local ttl = tonumber(ARGV[1])
        if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
        return redis.call('SCARD', KEYS[1])
        """)

    /// Adds or refreshes a user's sockets, all on one node incarnation, each to expire `ttl` from
    /// now. Once the hash holds more than 8 entries, each call also prunes expired entries, 32 at a
    /// time (the scan cursor is kept in field `\u{1}c`): stale entries stay at most 8 per user.
    /// KEYS: user. ARGV: ttl ms, node id, incarnation, mode, socket ids…. Mode `add` writes every
    /// entry (the latest connect wins); `refresh` only extends entries this incarnation still holds,
    /// so a refresh never takes back a socket that reconnected elsewhere.
    public static let userAdd = RedisScript(name: "presence_user_add", source: now + """

        local ttl = tonumber(ARGV[1])
        local owner = '\\31' .. ARGV[3] .. '\\31' .. ARGV[2]
        local value = ms(now + ttl) .. owner
        for i = 5, #ARGV do
            if ARGV[4] == 'add' then
                redis.call('HSET', KEYS[1], ARGV[i], value)
            else
                local current = redis.call('HGET', KEYS[1], ARGV[i])
                if current and string.sub(current, -#owner) == owner then redis.call('HSET', KEYS[1], ARGV[i], value) end
            end
        end
        if redis.call('HLEN', KEYS[1]) > 8 then
            local cursorField = '\\1c'
            local scan = redis.call('HSCAN', KEYS[1], redis.call('HGET', KEYS[1], cursorField) or '0', 'COUNT', 32)
            local page = scan[2]
            for i = 1, #page, 2 do
                if page[i] ~= cursorField then
                    local e = tonumber(string.match(page[i + 1], '^(%d+)'))
                    if e == nil or e < now then redis.call('HDEL', KEYS[1], page[i]) end
                end
            end
            if scan[1] == '0' then redis.call('HDEL', KEYS[1], cursorField)
            else redis.call('HSET', KEYS[1], cursorField, scan[1]) end
        end
        if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
        return 1
        """)

    /// Removes a user's sockets only where the given node (and incarnation) holds them.
    /// KEYS: user. ARGV: node id, incarnation (`""` for any), socket ids…. Returns how many went.
    public static let userRemove = RedisScript(name: "presence_user_remove", source: """
        local removed = 0
        for i = 3, #ARGV do
            local value = redis.call('HGET', KEYS[1], ARGV[i])
            if value then
                local _, incarnation, node = string.match(value, '^(%d+)\\31([^\\31]*)\\31(.*)$')
                if node == ARGV[1] and (ARGV[2] == '' or incarnation == ARGV[2]) then
                    redis.call('HDEL', KEYS[1], ARGV[i])
                    removed = removed + 1
                end
            end
        end
        if redis.call('HLEN', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], '\\1c') == 1 then
            redis.call('DEL', KEYS[1])
        end
        return removed
        """)

    /// Every script, for ``RedisClient/init(configuration:scripts:logger:)``.
    public static let all: [RedisScript] = [heartbeat, leave, forget, connect, disconnect, indexAdd, userAdd, userRemove]
}
