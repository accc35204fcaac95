import jax

# Tests compare against float64 references; the engine enables x64 locally, and this makes
# the tests' own jnp arrays float64 too.
jax.config.update("jax_enable_x64", True)
