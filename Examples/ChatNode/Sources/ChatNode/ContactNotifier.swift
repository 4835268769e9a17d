import Foundation
import Logging
import Presence
import ServiceLifecycle
import Synchronization
import WSCore

/// Tells this node's websockets when a contact their user follows goes online or offline:
/// `{"type":"presence","userId":…,"online":true|false}`, from the registry's change stream
/// (``PresenceRegistry/changes(from:filter:pollInterval:)``, `user.online` / `user.offline` only).
/// Starts at the newest change (live only); after Redis fails it waits `retryDelay` and resumes
/// from the last change read, so nothing is missed unless it was trimmed meanwhile (then it goes on live).
final class ContactNotifier: Service, Sendable {
    let registry: PresenceRegistry
    let sockets: LocalSockets
    let logger: Logger
    let retryDelay: Duration
    private let started = Atomic(false)

    init(registry: PresenceRegistry, sockets: LocalSockets, logger: Logger, retryDelay: Duration = .seconds(1)) {
        self.registry = registry
        self.sockets = sockets
        self.logger = logger
        self.retryDelay = retryDelay
    }

    /// Whether it has its start position: every change recorded since is told.
    var isFollowing: Bool { started.load(ordering: .acquiring) }

    static let filter = ChangeFilter(kinds: [.userOnline, .userOffline])

    func run() async throws {
        await cancelWhenGracefulShutdown { [self] in await follow() }
    }

    private func follow() async {
        var position: ChangePosition?
        while !Task.isCancelled {
            var changes: PresenceChanges.AsyncIterator?
            do {
                let start: ChangePosition
                if let position { start = position } else { start = try await registry.newestChangePosition() }
                changes = registry.changes(from: start, filter: Self.filter).makeAsyncIterator()
                started.store(true, ordering: .releasing)
                while let change = try await changes!.next() {
                    await notify(change)
                }
                return  // cancelled
            } catch let error as PresenceError where error.code == .changesTrimmed {
                logger.warning("contact changes were trimmed before they were read; going on live", metadata: ["error": "\(error.message)"])
                position = nil
            } catch {
                if let changes { position = changes.position }
                logger.warning("cannot read contact changes; retrying", metadata: ["error": "\(error)"])
                do { try await Task.sleep(for: retryDelay) } catch { return }
            }
        }
    }

    /// Writes the change to every local socket that follows its user (a socket that closed
    /// meanwhile is skipped).
    func notify(_ change: PresenceChange) async {
        guard let userID = change.userID else { return }
        let followers = sockets.followers(of: userID)
        if followers.isEmpty { return }
        guard let data = try? JSONSerialization.data(
            withJSONObject: ["type": "presence", "userId": userID, "online": change.kind == .userOnline] as [String: Any], options: [.sortedKeys])
        else { return }
        let text = String(decoding: data, as: UTF8.self)
        for writer in followers { try? await writer.write(.text(text)) }
    }
}
