package evtship.es.launcher;

import java.util.Map;

import org.elasticsearch.env.Environment;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

/**
 * Elasticsearch 9.x: the caller loads the module bundles (Elasticsearch's own bootstrap does it
 * before it starts entitlements, which this launcher does not start).
 */
final class Nodes {
    private Nodes() {
    }

    static Node create(Environment env) {
        PluginsLoader loader = PluginsLoader.createPluginsLoader(
                PluginsLoader.loadModulesBundles(env.modulesDir(), false),
                PluginsLoader.loadPluginsBundles(env.pluginsDir(), false),
                Map.of());
        return new Node(env, loader);
    }
}
