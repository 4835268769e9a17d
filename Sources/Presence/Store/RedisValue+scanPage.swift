extension RedisValue {
    /// A reply of the `SCAN` family (`SCAN`, `SSCAN`, `HSCAN`): the next cursor and the page.
    /// - Throws: ``PresenceError`` ``PresenceError/Code/corruptData`` naming `command` when the reply
    ///   has another shape.
    func scanPage(_ command: String) throws(PresenceError) -> (cursor: String, items: [RedisValue]) {
        guard let parts = array, parts.count == 2, let cursor = parts[0].string, let items = parts[1].array else {
            throw PresenceError(.corruptData, "unexpected \(command) reply \(self)")
        }
        return (cursor, items)
    }
}
