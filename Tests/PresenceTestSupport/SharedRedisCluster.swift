import Foundation
import PresenceEmbedded
import Synchronization

/// One Redis Cluster (3 primaries, 1 replica each) for the whole test process, started by the
/// first test that asks and stopped when the process exits.
///
/// For tests that only read and write: use keys with a prefix of your own (a UUID), so tests
/// running in parallel never meet, and delete them when done. A test that kills, pauses, restarts
/// or reshards nodes starts its own ``LocalRedisCluster``: the shared one must stay as it started.
public enum SharedRedisCluster {
    /// The start, shared by every caller; a start that failed fails every later call the same way
    /// (starting six servers again for each test would only fail slower).
    private static let startup = Mutex<Task<LocalRedisCluster, any Error>?>(nil)
    /// The cluster once started, for the exit handler (static storage is never deinitialized).
    private static let started = Mutex<LocalRedisCluster?>(nil)

    /// The shared cluster, started on the first call (about 2 s); later calls wait for that start.
    /// - Throws: what ``LocalRedisCluster/start(primaries:replicasPerPrimary:directory:extraArguments:)``
    ///   threw (redis-server or redis-cli missing, the cluster not settling).
    public static func get() async throws -> LocalRedisCluster {
        let task = startup.withLock { task in
            if let task { return task }
            // An unstructured task on purpose: the start must not be cancelled with whichever test
            // happened to ask first, since every other test waits for it too.
            let start = Task {
                let cluster = try await LocalRedisCluster.start()
                started.withLock { $0 = cluster }
                atexit { SharedRedisCluster.stopAtExit() }
                return cluster
            }
            task = start
            return start
        }
        return try await task.value
    }

    private static func stopAtExit() {
        started.withLock { $0 }?.stop()
    }
}
