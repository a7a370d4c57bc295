// placeholder: replaced by the component that owns it
#pragma once
