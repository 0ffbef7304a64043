package pgcdc.registry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.List;
import javax.enterprise.context.ApplicationScoped;
import javax.enterprise.inject.Produces;

/**
 * Supplies Apicurio's index of dynamically changeable configuration
 * properties. Apicurio generates it with a Quarkus build extension that Maven
 * Central does not serve; pg-cdc's tests change no dynamic property, so the
 * index is empty (the REST API answers as usual, /admin/config/properties
 * lists nothing).
 */
@ApplicationScoped
public class DynamicConfigProducer {
    @Produces
    @ApplicationScoped
    public DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(List.of());
    }
}
