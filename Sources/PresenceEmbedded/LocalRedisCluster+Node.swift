import Glibc

extension LocalRedisCluster {
    /// One redis-server of the cluster as this process knows it (its role is the cluster's to say:
    /// see ``LocalRedisCluster/primaries()`` and ``LocalRedisCluster/replica(of:)``).
    public struct Node: Sendable, Hashable {
        /// Its client port on 127.0.0.1 (its cluster bus is `port + 10000`).
        public let port: Int
        /// The process id of its current redis-server (a new one after ``LocalRedisCluster/restart(port:)``).
        public let pid: pid_t
        /// Whether its process has not been reaped: false after ``LocalRedisCluster/kill(port:)``
        /// or ``LocalRedisCluster/stop()``. A paused node is running.
        public let isRunning: Bool
        /// Whether it is stopped by ``LocalRedisCluster/pause(port:)`` (SIGSTOP) and not resumed.
        public let isPaused: Bool
    }
}
