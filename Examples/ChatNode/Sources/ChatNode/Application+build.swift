import Hummingbird
import HummingbirdWebSocket
import Logging
import Presence
import ServiceLifecycle

/// Builds the node: the Redis client and the `PresenceNode` run as services of the application's
/// `ServiceGroup`, started before the HTTP server and stopped after it. On SIGTERM the server
/// closes its websockets (each reported as disconnected), then the node writes what is pending
/// and leaves the registry, then the client drains. With the change stream on, a
/// ``ContactNotifier`` tells websockets when the contacts they follow go online or offline.
func buildApplication(_ options: ChatNodeOptions, logger: Logger) throws -> some ApplicationProtocol {
    let client = RedisClient(
        configuration: try RedisConfiguration(url: options.redisURL), scripts: PresenceScripts.all,
        logger: Logger(label: "chat-node.redis"))
    let node = try PresenceNode(
        nodeID: options.nodeID, address: options.address, client: client, configuration: options.presence,
        logger: Logger(label: "chat-node.presence"))
    let sockets = LocalSockets()
    let registry = PresenceRegistry(client: client, configuration: options.presence)
    let router = MessageRouter(nodeID: options.nodeID, sockets: sockets, registry: registry, forwarder: NodeForwarder(), logger: logger)
    // Contacts going online/offline come from the change stream, which a registry with changes off does not write.
    let notifier = options.presence.changes ? ContactNotifier(registry: registry, sockets: sockets, logger: logger) : nil

    let http = Router()
    ChatController(router: router, node: node, notifier: notifier).addRoutes(to: http)
    let webSockets = Router(context: BasicWebSocketRequestContext.self)
    SocketEndpoint(node: node, sockets: sockets, logger: logger).addRoutes(to: webSockets)

    return Application(
        router: http,
        server: .http1WebSocketUpgrade(webSocketRouter: webSockets, configuration: .init(ws: .init(closeTimeout: .seconds(5)))),
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "chat-node", backlog: 1024),
        services: [client, node] + (notifier.map { [$0] } ?? []),
        onServerRunning: { _ in
            logger.notice("chat-node is listening", metadata: [
                "nodeId": "\(options.nodeID)", "address": "\(options.address)", "redis": "\(RedisConfiguration.redacted(options.redisURL))",
            ])
        },
        logger: logger)
}
