// Only the header matters: the driver itself comes from libFuzzer's runtime.
#include "CLibFuzzer.h"
