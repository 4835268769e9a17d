import Foundation

extension PresenceChange {
    /// Decodes a stream entry, `[id, [token…]]` as `XRANGE` answers, into its changes in order.
    ///
    /// An entry holds the changes of one script call as a flat list of tokens (`docs/changes.md`,
    /// "Stream entries"): each change its code and then its parts — `sc` socket, node, user,
    /// connectedAt µs; `sd` socket, node, user, reason; `uon`/`uoff` user; `nup`/`ndown`/`nleft`
    /// node, incarnation — and a last `""` when the count is odd. A socket is its record key or a
    /// user-hash field (`socket␟incarnation`), a user its user key or `""`: the strings the script
    /// holds, which cost it nothing to write. Decoding stops at a code it does not know (a newer
    /// version's, during a rolling upgrade): the rest of that entry is skipped. An entry of the
    /// earlier layout (fields `t`, `s`, …) holds one change.
    static func decode(entry: RedisValue, stream: Int, keys: PresenceKeys) -> [PresenceChange] {
        guard let parts = entry.array, parts.count == 2, let id = parts[0].string,
              let position = ChangePosition.Entry(stream: stream, id: id), position.index == ChangePosition.Entry.whole,
              let tokens = parts[1].array, !tokens.isEmpty else { return [] }
        if tokens[0].string == "t" {
            return PresenceChange(legacy: position, fields: parts[1].fieldMap).map { [$0] } ?? []
        }
        let at = Date(milliseconds: position.milliseconds)
        let socketPrefix = keys.socket(""), userPrefix = keys.user("")
        var changes: [PresenceChange] = []
        var next = 0
        func token(_ offset: Int) -> String? { next + offset < tokens.count ? tokens[next + offset].string : nil }
        while let code = token(0), let kind = Kind(code: code) {
            var change = PresenceChange(kind: kind, id: position, at: at)
            change.id.index = changes.count
            switch kind {
            case .socketConnected, .socketDisconnected:
                guard let socket = token(1), let node = token(2), let user = token(3), let last = token(4),
                      let socketID = Self.socketID(socket, keyPrefix: socketPrefix) else { return Self.ended(changes) }
                change.socketID = socketID
                change.nodeID = node
                if !user.isEmpty {
                    guard let userID = Self.tagged(user, keyPrefix: userPrefix) else { return Self.ended(changes) }
                    change.userID = userID
                }
                if kind == .socketConnected {
                    change.connectedAt = Int(last).map { Date(timeIntervalSince1970: Double($0) / 1_000_000) }
                } else {
                    change.reason = DisconnectReason(rawValue: last)
                }
                next += 5
            case .userOnline, .userOffline:
                guard let user = token(1), let userID = Self.tagged(user, keyPrefix: userPrefix) else { return Self.ended(changes) }
                change.userID = userID
                next += 2
            case .nodeUp, .nodeDown, .nodeLeft:
                guard let node = token(1), let incarnation = token(2) else { return Self.ended(changes) }
                change.nodeID = node
                change.incarnation = incarnation
                next += 3
            }
            changes.append(change)
        }
        return Self.ended(changes)
    }

    /// The changes of an entry, the last one marked as the entry's last (a position there has read it all).
    private static func ended(_ changes: [PresenceChange]) -> [PresenceChange] {
        var changes = changes
        if !changes.isEmpty { changes[changes.count - 1].id.index = ChangePosition.Entry.whole }
        return changes
    }

    /// The socket id in a user-hash field (`socket␟incarnation`) or a record key.
    private static func socketID(_ token: String, keyPrefix: String) -> String? {
        if let split = token.firstIndex(of: SocketRecord.separator) { return String(token[..<split]) }
        return tagged(token, keyPrefix: keyPrefix)
    }

    /// The id in a key `<keyPrefix minus its closing brace>id}` (``PresenceKeys/socket(_:)`` or ``PresenceKeys/user(_:)`` of `""`).
    private static func tagged(_ key: String, keyPrefix: String) -> String? {
        let open = keyPrefix.dropLast()  // "P:r:{"
        guard key.count > open.count, key.hasPrefix(open), key.hasSuffix("}") else { return nil }
        return String(key.dropFirst(open.count).dropLast())
    }
}
