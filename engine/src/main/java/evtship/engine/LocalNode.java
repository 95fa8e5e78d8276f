package evtship.engine;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.Collections;
import java.util.List;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

/**
 * Runs one real OpenSearch node in this JVM, on loopback, with the modules evtship's tests need.
 *
 * <p>Usage: {@code LocalNode HOME HTTP_PORT TRANSPORT_PORT [CLUSTER_NAME [NODE_NAME [SEED_HOSTS
 * [INITIAL_MANAGERS [ROLES]]]]]}. With no seed hosts the node runs as a single-node cluster;
 * with them it joins the nodes listed (transport addresses), the cluster being bootstrapped by
 * the node names in INITIAL_MANAGERS (default: this node). ROLES defaults to
 * {@code cluster_manager,data,ingest}. The process stays up until it is
 * killed; {@code scripts/opensearch-local} manages it.
 */
public final class LocalNode {

    /** Modules named as classes, so that a missing jar is a compile error, not a silent node. */
    static final List<Class<? extends Plugin>> MODULES = List.of(
            org.opensearch.transport.Netty4Plugin.class,
            org.opensearch.index.mapper.MapperExtrasPlugin.class,
            org.opensearch.analysis.common.CommonAnalysisPlugin.class,
            org.opensearch.index.reindex.ReindexPlugin.class,
            org.opensearch.painless.PainlessPlugin.class,
            org.opensearch.ingest.common.IngestCommonPlugin.class);

    /** The public Node constructor loads plugins from disk only; this one takes classes. */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }

        @Override
        protected void configureNodeAndClusterIdStateListener(org.opensearch.cluster.service.ClusterService clusterService) {
            // The log4j cluster/node id listener is not wanted in an embedded node.
        }
    }

    private LocalNode() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: LocalNode HOME HTTP_PORT TRANSPORT_PORT [CLUSTER_NAME [NODE_NAME [SEED_HOSTS]]]");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        String httpPort = args[1];
        String transportPort = args[2];
        String clusterName = args.length > 3 ? args[3] : "evtship-local";
        String nodeName = args.length > 4 ? args[4] : "node-" + httpPort;
        String seeds = args.length > 5 ? args[5] : "";
        String managers = args.length > 6 && !args[6].isEmpty() ? args[6] : nodeName;
        String roles = args.length > 7 && !args[7].isEmpty() ? args[7] : "cluster_manager,data,ingest";

        Path config = home.resolve("config");
        Files.createDirectories(config);
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.writeString(config.resolve("log4j2.properties"), String.join("\n",
                "status = error",
                "appender.console.type = Console",
                "appender.console.name = console",
                "appender.console.layout.type = PatternLayout",
                "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%c{1.}] %m%n",
                "rootLogger.level = info",
                "rootLogger.appenderRef.console.ref = console",
                ""));

        Settings.Builder settings = Settings.builder()
                .put("path.home", home.toString())
                .put("path.data", home.resolve("data").toString())
                .put("path.logs", home.resolve("logs").toString())
                .put("cluster.name", clusterName)
                .put("node.name", nodeName)
                .put("network.host", "127.0.0.1")
                .put("http.port", httpPort)
                .put("transport.port", transportPort)
                .putList("node.roles", roles.split(","))
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                .put("action.auto_create_index", true);
        if (seeds.isEmpty()) {
            settings.put("discovery.type", "single-node");
        } else {
            settings.putList("discovery.seed_hosts", seeds.split(","));
            settings.putList("cluster.initial_cluster_manager_nodes", managers.split(","));
        }

        Environment env = InternalSettingsPreparer.prepareEnvironment(
                settings.build(), Collections.emptyMap(), config, () -> nodeName);
        LogConfigurator.configure(env);

        Node node = new EmbeddedNode(env, MODULES);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                System.err.println("error while stopping the node: " + e);
            }
        }));
        node.start();
        System.out.println("evtship local engine: http://127.0.0.1:" + httpPort + " (cluster " + clusterName + ")");
        Thread.currentThread().join();
    }
}
