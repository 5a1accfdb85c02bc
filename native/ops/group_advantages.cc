#include "group_advantages.h"
#include <stdexcept>
namespace grpo {
void group_advantages_cpu(GroupAdvantagesArgs&) { throw std::runtime_error("groupAdvantages: not implemented yet"); }
}
