/// The Lua scripts of the layout. Each touches only the keys it receives in `KEYS`, all in one
/// hash slot; times come from the Redis server's clock (`TIME`), never from a caller's.
/// Composite values separate their parts with U+001F (unit separator), which ids cannot contain.
public enum PresenceScripts {
    static let now = """
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
        local function ms(x) return string.format('%.0f', x) end
        """

    /// Registers or heartbeats a node. KEYS: table, node record. ARGV: node id, incarnation (`""`:
    /// keep the registered one, or take ARGV[10] when none is), ttl ms, retention ms, address (`""`
    /// keeps), startedAt ms (kept from the record while the incarnation stays), socket count (`-1`
    /// keeps), user count (`-1` keeps), meta JSON (`""` keeps), a fresh incarnation (only read when
    /// ARGV[2] is `""`), changes retention ms (`""` or absent: record nothing; then KEYS 3 and 4 are
    /// stream 0 and the gone hash). Returns `{status, nowMs, expiresAtMs, incarnation}`; status is `ok` (same incarnation, was alive), `new`
    /// (no record: first start or Redis lost its state), `revived` (same incarnation, had expired)
    /// or `replaced` (another incarnation was registered). Anything but `ok` means the caller must
    /// write all its sockets again. Entries of nodes dead longer than the retention are pruned a
    /// few per heartbeat (an `HSCAN` slice from a cursor kept in the table's field `\u{1}c`, which
    /// readers skip): the cost is the same for 10 nodes or 10,000. With changes recorded: `node.up`
    /// on `new`, `replaced` (after `node.down` of the replaced incarnation, which is marked for the
    /// watcher to disconnect its sockets) and on `revived` after the watcher announced it down;
    /// KEYS 5 is then the watcher's lease: while a watcher still disconnects the announced
    /// incarnation's sockets, status `down` (nothing written: the node stays dead until that is
    /// done, at most 4 TTLs after the announcement).
    public static let heartbeat = RedisScript(name: "presence_heartbeat", source: now + """

        local ttl = tonumber(ARGV[3])
        local retention = tonumber(ARGV[4])
        local previous = redis.call('HMGET', KEYS[2], 'incarnation', 'expiresAt', 'startedAt', 'down')
        local incarnation = ARGV[2]
        if incarnation == '' then incarnation = previous[1] or ARGV[10] end
        if incarnation == nil or incarnation == '' then return redis.error_reply('ERR presence_heartbeat: no incarnation') end
        local startedAt = ARGV[6]
        if previous[1] == incarnation and previous[3] then startedAt = previous[3] end
        local status = 'ok'
        if not previous[1] then status = 'new'
        elseif previous[1] ~= incarnation then status = 'replaced'
        elseif tonumber(previous[2] or '0') <= now then status = 'revived' end
        -- An incarnation whose sockets a watcher is still disconnecting (mark `p` for it, a watcher
        -- holding the lease): announced down (field `down`: incarnation␟ms) and heartbeating again,
        -- or left and registering again. It stays dead until that is done, so that the walk never
        -- deletes a record it writes again; the heartbeat after answers `revived` (or `new`). A
        -- revival waits 4 TTLs at most (a walk that cannot finish must not keep a live node dead).
        -- A revival reads the announcement from the record (no extra command unless announced); a
        -- registration (rare) looks for a mark.
        local announced, at
        if previous[4] then announced, at = string.match(previous[4], '^([^\\31]*)\\31?(%d*)$') end
        if ((status == 'revived' and announced == incarnation and now - (tonumber(at) or 0) < 4 * ttl) or status == 'new')
            and ARGV[11] and ARGV[11] ~= '' and KEYS[5] then
            local mark = redis.call('HGET', KEYS[4], ARGV[1])
            if mark and string.match(mark, '^p\\31([^\\31]*)') == incarnation and redis.call('EXISTS', KEYS[5]) == 1 then
                return {'down', ms(now), previous[2] or ms(now), incarnation}
            end
        end
        local expiresAt = now + ttl
        local fields = {'incarnation', incarnation, 'startedAt', startedAt, 'lastHeartbeat', ms(now),
            'expiresAt', ms(expiresAt), 'ttl', ARGV[3]}
        if ARGV[5] ~= '' then fields[#fields + 1] = 'address'; fields[#fields + 1] = ARGV[5] end
        if ARGV[7] ~= '-1' then fields[#fields + 1] = 'socketCount'; fields[#fields + 1] = ARGV[7] end
        if ARGV[8] ~= '-1' then fields[#fields + 1] = 'userCount'; fields[#fields + 1] = ARGV[8] end
        if ARGV[9] ~= '' then fields[#fields + 1] = 'meta'; fields[#fields + 1] = ARGV[9] end
        redis.call('HSET', KEYS[2], unpack(fields))
        redis.call('PEXPIRE', KEYS[2], ttl + retention)
        local address = redis.call('HGET', KEYS[2], 'address') or ''
        redis.call('HSET', KEYS[1], ARGV[1], ms(expiresAt) .. '\\31' .. incarnation .. '\\31' .. address)
        -- Amortized pruning: a few entries per heartbeat, from a cursor kept in field \\1c, so the
        -- heartbeat's cost does not grow with the number of nodes.
        local cursorField = '\\1c'
        local scan = redis.call('HSCAN', KEYS[1], redis.call('HGET', KEYS[1], cursorField) or '0', 'COUNT', 8)
        local page = scan[2]
        for i = 1, #page, 2 do
            if page[i] ~= cursorField then
                local e = tonumber(string.match(page[i + 1], '^(%d+)'))
                if e == nil or e + retention < now then redis.call('HDEL', KEYS[1], page[i]) end
            end
        end
        if scan[1] == '0' then redis.call('HDEL', KEYS[1], cursorField)
        else redis.call('HSET', KEYS[1], cursorField, scan[1]) end
        redis.call('PEXPIRE', KEYS[1], math.max(redis.call('PTTL', KEYS[1]), ttl + retention))
        -- Field `down` of the record names the incarnation the watcher announced down, so that
        -- telling whether to record costs no extra read.
        if KEYS[4] and ARGV[11] and ARGV[11] ~= '' and status ~= 'ok' then
            local minid = ms(now - tonumber(ARGV[11]))
            if announced then redis.call('HDEL', KEYS[2], 'down') end
            if status == 'replaced' then
                if announced ~= previous[1] then
                    redis.call('XADD', KEYS[3], 'MINID', '~', minid, '*', 'ndown', ARGV[1], previous[1], '')
                    redis.call('HSET', KEYS[4], ARGV[1], 'p\\31' .. previous[1] .. '\\31node_down')
                    redis.call('PEXPIRE', KEYS[4], math.max(redis.call('PTTL', KEYS[4]), ttl + retention))
                end
                redis.call('XADD', KEYS[3], 'MINID', '~', minid, '*', 'nup', ARGV[1], incarnation, '')
                redis.call('PEXPIRE', KEYS[3], ARGV[11])
            elseif status == 'new' then
                redis.call('XADD', KEYS[3], 'MINID', '~', minid, '*', 'nup', ARGV[1], incarnation, '')
                redis.call('PEXPIRE', KEYS[3], ARGV[11])
            elseif announced == incarnation then
                -- revived after the watcher announced it down: up again (it writes its sockets again)
                redis.call('HDEL', KEYS[4], ARGV[1])
                redis.call('XADD', KEYS[3], 'MINID', '~', minid, '*', 'nup', ARGV[1], incarnation, '')
                redis.call('PEXPIRE', KEYS[3], ARGV[11])
            end
        end
        return {status, ms(now), ms(expiresAt), incarnation}
        """)

    /// A node leaves: its table entry and record go, so its sockets read dead at once.
    /// KEYS: table, node record. ARGV: node id, incarnation (`""` for any). Returns 1, or 0 when
    /// the node is not registered or another incarnation holds the record (it is left alone).
    /// With ARGV[3] (changes retention ms, not `""`) and KEYS stream 0 and the gone hash: records
    /// `node.left` and marks the node for the watcher (its sockets' disconnects, reason `node_left`).
    public static let leave = RedisScript(name: "presence_leave", source: """
        local entry = redis.call('HGET', KEYS[1], ARGV[1])
        local incarnation = redis.call('HGET', KEYS[2], 'incarnation')
        if entry then incarnation = string.match(entry, '^%d+\\31([^\\31]*)\\31') end
        if not incarnation then return 0 end
        if ARGV[2] ~= '' and incarnation ~= ARGV[2] then return 0 end
        redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('DEL', KEYS[2])
        if KEYS[4] and ARGV[3] and ARGV[3] ~= '' then
            local clock = redis.call('TIME')
            local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
            local minid = string.format('%.0f', now - tonumber(ARGV[3]))
            redis.call('XADD', KEYS[3], 'MINID', '~', minid, '*', 'nleft', ARGV[1], incarnation, '')
            redis.call('PEXPIRE', KEYS[3], ARGV[3])
            redis.call('HSET', KEYS[4], ARGV[1], 'p\\31' .. incarnation .. '\\31node_left')
            redis.call('PEXPIRE', KEYS[4], math.max(redis.call('PTTL', KEYS[4]), redis.call('PTTL', KEYS[1]), tonumber(ARGV[3])))
        end
        return 1
        """)

    /// The watcher announces a dead node. KEYS: table, gone hash, stream 0, node record (its field
    /// `down` names the incarnation announced, for the heartbeat to read at no cost). ARGV: node id, the table
    /// value seen expired, changes retention ms. Records `node.down` and marks the node `p` (its
    /// sockets to disconnect) unless the entry changed (returns 0: it came back) or that
    /// incarnation was announced already (returns 2); returns 1 when it recorded it. Compare and
    /// record in one call: two watchers never record a node twice.
    public static let nodeDown = RedisScript(name: "presence_node_down", source: now + """

        local entry = redis.call('HGET', KEYS[1], ARGV[1])
        if entry ~= ARGV[2] then return 0 end
        local expiresAt, incarnation = string.match(entry, '^(%d+)\\31([^\\31]*)\\31')
        if not expiresAt or tonumber(expiresAt) > now then return 0 end
        local gone = redis.call('HGET', KEYS[2], ARGV[1])
        if gone and string.match(gone, '^[pd]\\31([^\\31]*)') == incarnation then return 2 end
        redis.call('XADD', KEYS[3], 'MINID', '~', ms(now - tonumber(ARGV[3])), '*', 'ndown', ARGV[1], incarnation, '')
        redis.call('PEXPIRE', KEYS[3], ARGV[3])
        redis.call('HSET', KEYS[2], ARGV[1], 'p\\31' .. incarnation .. '\\31node_down')
        redis.call('PEXPIRE', KEYS[2], math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[1]), tonumber(ARGV[3])))
        if redis.call('HGET', KEYS[4], 'incarnation') == incarnation then redis.call('HSET', KEYS[4], 'down', incarnation .. '\\31' .. ms(now)) end
        return 1
        """)

    /// The watcher's bookkeeping of the gone hash. KEYS: gone hash, table. ARGV: node id, the value
    /// seen, `done` or `forget`. `done`: a `p` value becomes `d` (its sockets are disconnected).
    /// `forget`: a `d` value goes when the table no longer lists that incarnation (nothing left
    /// to announce). Returns 1 when it changed the hash, else 0.
    public static let goneUpdate = RedisScript(name: "presence_gone_update", source: """
        local gone = redis.call('HGET', KEYS[1], ARGV[1])
        if gone ~= ARGV[2] then return 0 end
        if ARGV[3] == 'done' then
            redis.call('HSET', KEYS[1], ARGV[1], 'd' .. string.sub(gone, 2))
            return 1
        end
        local incarnation = string.match(gone, '^d\\31([^\\31]*)')
        local entry = redis.call('HGET', KEYS[2], ARGV[1])
        if not incarnation or (entry and string.match(entry, '^%d+\\31([^\\31]*)') == incarnation) then return 0 end
        redis.call('HDEL', KEYS[1], ARGV[1])
        return 1
        """)

    /// Renews or releases the watcher lease held by ARGV[1]. KEYS: the lease. ARGV: holder id,
    /// lease ms (`0`: release). Returns 1 when this holder held it, else 0.
    public static let lease = RedisScript(name: "presence_lease", source: """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        return 1
        """)

    /// Sets a key only while ARGV[1] holds a lease and the key still holds what that holder read:
    /// how a webhook's delivery moves its cursor, so that a former holder (stalled past its lease)
    /// cannot move it back. A lease that expired and nobody took is taken again (`PX` ARGV[4]):
    /// a renewal that came late on a loaded machine then costs no redelivery, and the compare
    /// still refuses a cursor another holder moved meanwhile. KEYS: the lease, the key (one slot).
    /// ARGV: holder id, the value expected (`""`: the key is absent), the new value, lease ms.
    /// Returns 1 when set, 0 when another holds the lease, -1 when the key changed.
    public static let leasedSet = RedisScript(name: "presence_leased_set", source: """
        local holder = redis.call('GET', KEYS[1])
        if not holder then
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
        elseif holder ~= ARGV[1] then
            return 0
        end
        local current = redis.call('GET', KEYS[2])
        if (current or '') ~= ARGV[2] then return -1 end
        redis.call('SET', KEYS[2], ARGV[3])
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

    /// Socket records and user entries in one call: a list of ``SocketOperation``s, run in order.
    /// One call carries many operations (all of a batch on a standalone Redis, one node's share on
    /// a Redis Cluster), so the per-call cost of a script is paid once per batch, not per socket.
    ///
    /// The keys of a call span hash slots, so they travel in ARGV and the script is flagged
    /// `allow-cross-slot-keys`: on a cluster node they must all be served by that node, and an
    /// operation whose key is not (a stale slot map, a slot migrating away) is skipped and answered
    /// with that error, for the caller to send again to the right node. KEYS: the first
    /// operation's key only, so that a cluster redirects a call sent to the wrong node at once.
    /// ARGV: node id, incarnation (`""`: any, for disconnects only), ttl ms, the change stream this
    /// node records into (`""`: none), changes retention ms, the reason of the call's disconnects,
    /// the users-online counter this node keeps (`""`: none), the last-seen retention ms and the
    /// socket-history retention ms (`""`: keep none), the node's socket set where this server holds
    /// it (one server: `x`/`X` remove from it; `""` on a cluster), then per operation its code, its
    /// key and its arguments. Returns one value per operation. What each operation records is in
    /// `docs/changes.md`; the last-seen times, tombstones and counter in `docs/data-model.md`.
    /// - `c` connect (record key; the ``SocketRecord`` value): writes the
    ///   record unless another node holds it with a later connectedAt (a stale report must not
    ///   displace the newer connection, or that node's coming disconnect would delete it). Returns
    ///   1 when the socket was not already held by this incarnation, 0 when it was (record
    ///   replaced), -1 when ignored as stale.
    /// - `d` disconnect (record key): deletes the record only if this node (and incarnation, when
    ///   given) holds it. Returns the deleted record's value, or nil. `D`: the same, returning 1
    ///   rather than the record (for a caller that needs nothing from it). `x` / `X`: `d` / `D`,
    ///   then the socket leaves the node's set (one `SREM` of them all at the end of the call, so a
    ///   refused call removes none): on one server the set's `SREM` rides in the call rather than
    ///   a round trip after it. `R` (record key; user key, field): `X`, then what `r` does with
    ///   the user key and field, one operation where one server holds both keys.
    /// - `a` user add (user key; field `socket␟incarnation`, record key, connectedAt µs): the entry
    ///   `expiresAtMs␟node`; a connect of that record key superseded earlier in the same call
    ///   writes nothing (returns 0): a stale report must not add a user entry either.
    ///   `f` user refresh (user key; field): the same entry, only where it still exists, so a
    ///   refresh never brings back an entry removed meanwhile. Return 1.
    /// - `C` (record key; the record, user key, field, and in a call that records changes the
    ///   connectedAt µs): `c`, then what `a` does with the user key and field unless the connect
    ///   was superseded: one operation where one server holds both keys. Returns what `c` does.
    /// - `r` user remove (user key; field): `HDEL`. The field names the incarnation, so this
    ///   removes no other node's entry. Returns 1 when removed, else 0.
    /// Each user key added to or refreshed keeps a TTL of at least `ttl`. A
    /// refreshed key holding more than 8 entries is also pruned of expired ones, 32 a call (the
    /// scan cursor is kept in field `\u{1}c`, removed when a pass completes), so stale entries of
    /// crashed nodes go even when no sweeper runs.
    ///
    /// Written for the Lua VM's cost, which is most of this script's (callgrind, `scripts/profile-redis`):
    /// no table built per operation, one server call per operation where it can, values built by
    /// the caller.
    public static let events = RedisScript(name: "presence_events", source: "#!lua flags=allow-cross-slot-keys\n" + now + """

        local call, pcall, match, find, sub = redis.call, redis.pcall, string.match, string.find, string.sub
        local node, incarnation, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
        -- The change stream: ARGV[4] the stream this primary records into ('' records nothing),
        -- ARGV[5] retention ms, ARGV[6] the reason of the disconnects this call makes.
        local stream, reason = ARGV[4], ARGV[6]
        local recording = stream ~= ''
        local minid
        -- The call's changes go into one stream entry (a few when many), one XADD rather than one
        -- per change: a flat list of tokens, each change its code and then its parts, which are
        -- the strings the call holds already (keys and user fields, not ids cut out of them).
        -- docs/changes.md, "Stream entries".
        local batch, nb, nc = {}, 0, 0  -- tokens, their count, the changes they hold
        local function flush()
            if nb % 2 == 1 then batch[nb + 1] = '' end  -- an entry holds field-value pairs
            pcall('XADD', stream, '*', unpack(batch))
            batch, nb, nc = {}, 0, 0
        end
        local function socketChange(code, socket, holder, user, last)  -- socket: a record key or user field
            minid = minid or ms(now - tonumber(ARGV[5]))
            batch[nb + 1] = code
            batch[nb + 2] = socket
            batch[nb + 3] = holder
            batch[nb + 4] = user
            batch[nb + 5] = last
            nb, nc = nb + 5, nc + 1
            if nc == 200 then flush() end  -- ChangeStreams.changesPerEntry
        end
        local function userChange(code, key)
            minid = minid or ms(now - tonumber(ARGV[5]))
            batch[nb + 1] = code
            batch[nb + 2] = key
            nb, nc = nb + 2, nc + 1
            if nc == 200 then flush() end
        end
        local sep = '\\31'
        local function tagged(key, marker)  -- the id in a key P:<marker>{id}
            return sub(key, find(key, marker, 1, true) + #marker, -2)
        end
        local function parse(value)  -- node, incarnation, connectedAt, user of a record
            return match(value, '^([^\\31]*)\\31([^\\31]*)\\31([^\\31]*)\\31([^\\31]*)')
        end
        local function connectedAt(record)  -- its third part, µs: cut out only where needed
            return match(record, '^[^\\31]*\\31[^\\31]*\\31(%d*)')
        end
        local function userless(record)  -- the fourth part (the user id) is empty
            return find(record, '\\31\\31', 1, true) ~= nil
        end
        -- Last seen, tombstones, users online (docs/data-model.md, "Last seen"): ARGV[7] the
        -- counter of this primary ('' none), ARGV[8] / ARGV[9] the retention ms of a user's
        -- last-seen time and of a socket's tombstone ('' keeps none). Each in its key's slot.
        local counter, seenFor, goneFor = ARGV[7], ARGV[8], ARGV[9]
        local online = 0  -- the counter's change, written once per call
        -- A tombstone is one integer, ms × 10 + the reason's code (the ms then one digit), which
        -- Redis stores without a string, written over the record it replaces: a record holds
        -- U+001F, a tombstone never does. The same value for every disconnect of a call.
        local stamp, userAt, tombstone
        local function gone()  -- the call's tombstone; callers check goneFor
            stamp = stamp or ms(now)
            tombstone = tombstone or stamp .. (({disconnected = '1', node_down = '2', node_left = '3', moved = '4'})[reason] or '1')
            return tombstone
        end
        local function offline(userKey)  -- the user's last entry went: P:ls:{U} = '<ms>'
            userChange('uoff', userKey)
            online = online - 1
            if seenFor ~= '' then
                stamp = stamp or ms(now)
                userAt = userAt or find(userKey, ':u:{', 1, true)
                call('SET', string.sub(userKey, 1, userAt) .. 'ls' .. string.sub(userKey, userAt + 2), stamp, 'PX', seenFor)
            end
        end
        local function entries(key, atMost)  -- a user's entries, the pruning cursor not counted
            local n = call('HLEN', key)
            -- The cursor matters only where the count decides: one HEXISTS there, not per call.
            if n > 0 and n <= atMost + 1 and call('HEXISTS', key, '\\1c') == 1 then n = n - 1 end
            return n
        end
        -- Connects of this call (record key → the record they displaced, or false), so that a
        -- user add finds a displaced entry without scanning its user's hash.
        local connectedHere = {}
        -- Commands take the TTL as the text it came as: a Lua number is formatted by snprintf per call.
        local ttlText = ARGV[3]
        local mine = node .. '\\31' .. incarnation .. '\\31'
        if incarnation == '' then mine = node .. '\\31' end
        local expiry
        local touched, refreshed, superseded, unserved = {}, {}, {}, {}
        local results = {}
        local index, unlisted = ARGV[10], {}  -- the node's set, and the sockets to take out of it
        -- A user entry of a connect that was not superseded (`a`, `C`): 1, or the error.
        local function addEntry(key, field, socketKey, at)
            expiry = expiry or ms(now + ttl) .. '\\31' .. node
            local written = pcall('HSET', key, field, expiry)
            if type(written) == 'table' then return written end
            touched[key] = true
            if recording and written == 1 then
                -- A new entry: the socket connected. An entry of the same socket by
                -- another incarnation is displaced (the socket moved), in this call.
                local n = entries(key, 1)
                local first = n == 1  -- the user had no entry before this one
                local displaced = connectedHere[socketKey]
                if n > 1 and displaced then
                    -- Its connect, in this call, displaced another incarnation's record:
                    -- that incarnation's entry goes (when it was this user's).
                    local holder, held, _, oldUser = parse(displaced)
                    local old = sub(field, 1, find(field, sep, 1, true)) .. held
                    if oldUser == tagged(key, ':u:{') and old ~= field and call('HDEL', key, old) == 1 then
                        socketChange('sd', old, holder, key, holder == node and 'node_down' or 'moved')
                    end
                elseif n > 1 and displaced == nil then
                    -- Its connect ran in another call (a cluster's deferred user add):
                    -- look for entries of this socket by other incarnations.
                    local socket = sub(field, 1, find(field, sep, 1, true) - 1)
                    local pattern = string.gsub(socket, '[%*%?%[%]\\\\]', function(c) return '\\\\' .. c end) .. '\\31*'
                    local cursor = '0'
                    repeat
                        local scan = call('HSCAN', key, cursor, 'MATCH', pattern, 'COUNT', 100)
                        cursor = scan[1]
                        local page = scan[2]
                        for j = 1, #page, 2 do
                            if page[j] ~= field and call('HDEL', key, page[j]) == 1 then
                                local oldNode = match(page[j + 1], '\\31(.*)$') or ''
                                socketChange('sd', page[j], oldNode, key, oldNode == node and 'node_down' or 'moved')
                            end
                        end
                    until cursor == '0'
                end
                socketChange('sc', field, node, key, at)
                if first then
                    userChange('uon', key)
                    online = online + 1
                end
            end
            return 1
        end
        local i, k = 11, 0
        local count = #ARGV
        while i <= count do
            local code = ARGV[i]
            k = k + 1
            local key = ARGV[i + 1]
            local result = 1
            if code == 'c' or code == 'C' then
                -- C: and its user entry (and, recording, the connectedAt µs its change carries)
                local record, userKey, field, at = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
                i = i + (code == 'c' and 3 or recording and 6 or 5)
                -- The first access of each operation is a pcall: a key this node does not serve
                -- answers an error for that operation alone. Written at once, with what was there
                -- returned (one command, not a GET and a SET): a newer connection put back.
                local previous = pcall('SET', key, record, 'PX', ttlText, 'GET')
                if type(previous) == 'table' then
                    result = previous
                    unserved[key] = previous
                elseif previous and find(previous, sep, 1, true) then  -- a record, not a tombstone
                    local holder, held, t = match(previous, '^([^\\31]*)\\31([^\\31]*)\\31(%d*)')
                    if holder ~= node and (tonumber(t) or 0) > tonumber(connectedAt(record)) then
                        call('SET', key, previous, 'PX', ttlText)  -- its TTL is renewed with it
                        result = -1
                        superseded[key] = true
                    else
                        if holder == node and held == incarnation then
                            result = 0
                            if recording then connectedHere[key] = false end
                        elseif recording then
                            connectedHere[key] = previous
                            -- Sockets without a user record here; a user's socket where its entry changes.
                            if userless(previous) then
                                socketChange('sd', key, holder, '', holder == node and 'node_down' or 'moved')
                            end
                            if userless(record) then socketChange('sc', key, node, '', connectedAt(record)) end
                        end
                    end
                else
                    if recording then
                        connectedHere[key] = false
                        if userless(record) then socketChange('sc', key, node, '', connectedAt(record)) end
                    end
                end
                if code == 'C' and result ~= -1 and type(result) ~= 'table' then
                    local added = addEntry(userKey, field, key, at)
                    if added ~= 1 then result = added end
                end
            elseif code == 'd' or code == 'D' or code == 'x' or code == 'X' or code == 'R' then
                local userKey, field = ARGV[i + 2], ARGV[i + 3]  -- R only
                i = i + (code == 'R' and 4 or 2)
                -- Deleted (or its tombstone written) at once, with what was there returned: one
                -- command, not a GET and a write. What was not this node's is put back.
                local record
                if goneFor ~= '' then record = pcall('SET', key, gone(), 'PX', goneFor, 'GET')
                else record = pcall('GETDEL', key) end
                if type(record) == 'table' then
                    result = record
                elseif record and find(record, mine, 1, true) == 1 then
                    if code == 'd' or code == 'x' then result = record end
                    if recording and userless(record) then  -- held by this node
                        socketChange('sd', key, node, '', reason)
                    end
                else
                    -- Another node's record (the socket moved), or a tombstone: back as it was,
                    -- its TTL renewed. Nothing there: the tombstone just written goes.
                    if record then
                        call('SET', key, record, 'PX', (goneFor ~= '' and not find(record, sep, 1, true)) and goneFor or ttlText)
                    elseif goneFor ~= '' then
                        call('DEL', key)
                    end
                    result = false
                end
                if (code == 'x' or code == 'X' or code == 'R') and index ~= '' and type(result) ~= 'table' then
                    unlisted[#unlisted + 1] = tagged(key, ':r:{')
                end
                if code == 'R' then  -- then its user entry goes, as r does
                    local removed = pcall('HDEL', userKey, field)
                    if type(removed) == 'table' then
                        result = removed
                    elseif recording and removed == 1 then
                        socketChange('sd', field, node, userKey, reason)
                        if entries(userKey, 0) == 0 then offline(userKey) end
                    end
                end
            elseif code == 'a' then
                local field, socketKey, at = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
                i = i + 5
                if unserved[socketKey] then
                    result = unserved[socketKey]  -- sent again after its connect, by the caller
                elseif superseded[socketKey] then
                    result = 0
                else
                    result = addEntry(key, field, socketKey, at)
                end
            elseif code == 'f' then
                local field = ARGV[i + 2]
                i = i + 3
                expiry = expiry or ms(now + ttl) .. '\\31' .. node
                local held = pcall('HEXISTS', key, field)
                if type(held) == 'table' then
                    result = held
                else
                    if held == 1 then call('HSET', key, field, expiry) end
                    refreshed[key] = true
                    touched[key] = true
                end
            elseif code == 'r' then
                local field = ARGV[i + 2]
                i = i + 3
                result = pcall('HDEL', key, field)
                if recording and result == 1 then
                    socketChange('sd', field, node, key, reason)
                    if entries(key, 0) == 0 then offline(key) end
                end
            else
                return redis.error_reply('ERR presence_events: unknown operation ' .. tostring(code))
            end
            results[k] = result
        end
        local cursorField = '\\1c'
        for key in pairs(refreshed) do
            if call('HLEN', key) > 8 then
                local scan = call('HSCAN', key, call('HGET', key, cursorField) or '0', 'COUNT', 32)
                local page = scan[2]
                local pruned = false
                for i = 1, #page, 2 do
                    if page[i] ~= cursorField then
                        local e = tonumber(match(page[i + 1], '^(%d+)'))
                        if e == nil or e < now then
                            call('HDEL', key, page[i])
                            if recording and find(page[i], sep, 1, true) then  -- a socket's entry
                                pruned = true
                                socketChange('sd', page[i], match(page[i + 1], '\\31(.*)$') or '', key, 'node_down')
                            end
                        end
                    end
                end
                if scan[1] == '0' then call('HDEL', key, cursorField)
                else call('HSET', key, cursorField, scan[1]) end
                if pruned and entries(key, 0) == 0 then offline(key) end
            end
        end
        if counter ~= '' and (online ~= 0 or next(touched)) then
            -- The counter lives as long as the user keys it counts (this primary's): a TTL of at
            -- least ttl whenever one is added to or refreshed, so it goes only once they all went.
            if online ~= 0 then pcall('INCRBY', counter, online) end
            local left = pcall('PTTL', counter)
            if type(left) == 'number' and left ~= -2 and left < ttl then pcall('PEXPIRE', counter, ttlText) end
        end
        -- The stream lives as long as its newest change: past that every entry is older than the retention.
        -- Trimmed once per call, not per entry.
        if minid then
            if nb > 0 then flush() end
            pcall('XTRIM', stream, 'MINID', '~', minid)
            pcall('PEXPIRE', stream, ARGV[5])
        end
        if #unlisted > 0 then pcall('SREM', index, unpack(unlisted)) end
        -- Extend, never shorten (another node may use a longer TTL); a new key has none yet.
        for key in pairs(touched) do
            if call('PEXPIRE', key, ttlText, 'GT') == 0 and call('PTTL', key) == -1 then call('PEXPIRE', key, ttlText) end
        end
        return results
        """)

    /// A lookup in one round trip, where one server holds every key (not on a Redis Cluster, whose
    /// records and table live on different primaries): the records of the sockets in ARGV (`GET`
    /// each), `TIME`, the table entries of the nodes they name, and for each socket without a
    /// record its tombstone (``PresenceKeys/socketGone(_:)``, nil when none). KEYS: the table.
    /// Returns `{seconds, microseconds, record…, names, entries, tombstones}`. Flagged `no-writes`, so a
    /// replica runs it too, and `allow-cross-slot-keys`, so a single cluster-mode server does.
    public static let lookup = RedisScript(name: "presence_lookup", source: """
        #!lua flags=no-writes,allow-cross-slot-keys
        local call, match = redis.call, string.match
        local clock = call('TIME')
        local out = {clock[1], clock[2]}
        local named, order, gone = {}, {}, {}
        for i = 1, #ARGV do
            local record = call('GET', ARGV[i])
            out[i + 2] = record
            gone[i] = false
            if record and not string.find(record, '\\31', 1, true) then  -- a tombstone
                out[i + 2] = false
                gone[i] = record
            elseif not record then  -- a tombstone of the earlier layout, while it lasts
                local at = string.find(ARGV[i], ':r:{', 1, true)
                gone[i] = call('GET', string.sub(ARGV[i], 1, at) .. 'g' .. string.sub(ARGV[i], at + 2))
            else
                local node = match(record, '^[^\\31]*')
                if not named[node] then
                    named[node] = true
                    order[#order + 1] = node
                end
            end
        end
        out[#ARGV + 3] = order
        if #order > 0 then out[#ARGV + 4] = call('HMGET', KEYS[1], unpack(order)) else out[#ARGV + 4] = {} end
        out[#ARGV + 5] = gone
        return out
        """)

    /// Every script, for ``RedisClient/init(configuration:scripts:logger:)``.
    public static let all: [RedisScript] = [heartbeat, leave, forget, events, lookup, nodeDown, goneUpdate, lease, leasedSet]
}
