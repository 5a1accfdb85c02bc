// Emulator stand-in for the CUDA runtime header (the include path of the emulator build puts
// this directory first): everything lives in cuda_emu.h.
#pragma once
#include "../cuda_emu.h"
