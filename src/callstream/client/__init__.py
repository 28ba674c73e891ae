"""KVS clients: build KVS-shaped MKV streams (:mod:`.producer`), upload them with PutMedia
(:mod:`.putmedia`) and read streams back with GetMedia (:mod:`.getmedia`)."""
