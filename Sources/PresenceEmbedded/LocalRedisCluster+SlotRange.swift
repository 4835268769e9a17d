extension LocalRedisCluster {
    /// A run of hash slots and the primary that owns them, as a node reports it.
    public struct SlotRange: Sendable, Hashable {
        /// The slots, within 0…16383.
        public let slots: ClosedRange<Int>
        /// The owning primary's port.
        public let primaryPort: Int
    }
}
