// shatter::compiled: the companion library's explicit instantiations for float and double (the
// list is in shatter/compiled.hpp, which declares them extern for the library's users).
#include "shatter/shatter.hpp"

#ifdef SHATTER_COMPILED
#error "src/compiled.cpp defines the instantiations: build it without SHATTER_COMPILED"
#endif

namespace shatter {
SHATTER_COMPILED_TEMPLATES(template, float)
SHATTER_COMPILED_TEMPLATES(template, double)
}  // namespace shatter
