#ifndef PRESENCE_CHIREDIS_SHIM_H
#define PRESENCE_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
