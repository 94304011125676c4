// The integration guide's Node.js client, copied unedited from
// ../shared/seed/loomi-pay-integration-guide.md, section "Node.js 示例" (the ```javascript block).
// Everything below this header is the guide's code byte for byte, including its Chinese text,
// which the guide's copy carries double-encoded (it cannot be decoded back without loss).
// Do not edit it: clients/run.sh checks that it still matches the guide. The guide does not
// export the class; run_guide_client.js loads this file and exports it in memory.

const axios = require('axios');
const Redis = require('redis');

class LoomipayClient {
    constructor(baseUrl, apiKey, appId, redisUrl) {
        this.baseUrl = baseUrl.replace(/\/$/, '');
        this.apiKey = apiKey;
        this.appId = appId;
        this.redis = Redis.createClient({ url: redisUrl });
        this.headers = {
            'Authorization': `Bearer ${apiKey}`,
            'Content-Type': 'application/json'
        };
    }
    
    async createPaymentOrder(merchantOrderId, amount, subject, orderType = 'payment', extraData = {}) {
        const url = `${this.baseUrl}/api/v1/payment-orders`;
        const data = {
            app_id: this.appId,
            merchant_order_id: merchantOrderId,
            amount,
            order_type: orderType,
            subject,
            extra_data: extraData
        };
        
        try {
            const response = await axios.post(url, data, { headers: this.headers });
            return response.data;
        } catch (error) {
            throw new Error(`åˆ›å»ºæ”¯ä»˜è®¢å•å¤±è´¥: ${error.response?.data?.detail || error.message}`);
        }
    }
    
    async getPaymentOrder(merchantOrderId) {
        const url = `${this.baseUrl}/api/v1/payment-orders/${merchantOrderId}`;
        const params = { app_id: this.appId };
        
        try {
            const response = await axios.get(url, { 
                headers: this.headers,
                params 
            });
            return response.data;
        } catch (error) {
            throw new Error(`æŸ¥è¯¢æ”¯ä»˜è®¢å•å¤±è´¥: ${error.response?.data?.detail || error.message}`);
        }
    }
    
    async createRefundOrder(paymentOrderId, amount, reason = null) {
        const url = `${this.baseUrl}/api/v1/refund-orders`;
        const data = {
            app_id: this.appId,
            payment_order_id: paymentOrderId,
            amount,
            reason
        };
        
        try {
            const response = await axios.post(url, data, { headers: this.headers });
            return response.data;
        } catch (error) {
            throw new Error(`åˆ›å»ºé€€æ¬¾è®¢å•å¤±è´¥: ${error.response?.data?.detail || error.message}`);
        }
    }
    
    async listenPaymentResults(consumerGroup = 'main_app') {
        await this.redis.connect();
        
        const streamName = 'payment_results';
        const consumerName = `${this.appId}_consumer`;
        
        // åˆ›å»ºæ¶ˆè´¹è€…ç»„
        try {
            await this.redis.xGroupCreate(streamName, consumerGroup, '0', {
                MKSTREAM: true
            });
        } catch (error) {
            // ç»„å·²å˜åœ¨ï¼Œå¿½ç•¥é”™è¯¯
        }
        
        while (true) {
            try {
                const messages = await this.redis.xReadGroup(
                    consumerGroup,
                    consumerName,
                    [{ key: streamName, id: '>' }],
                    { COUNT: 1, BLOCK: 1000 }
                );
                
                for (const message of messages) {
                    for (const msg of message.messages) {
                        const messageData = msg.message;
                        
                        // åªå¤„ç†å±äºå½“å‰åº”ç”¨çš„æ¶ˆæ¯
                        if (messageData.app_id === this.appId) {
                            await this.handlePaymentResult(messageData);
                        }
                        
                        // ç¡®è®¤æ¶ˆæ¯å·²å¤„ç†
                        await this.redis.xAck(streamName, consumerGroup, msg.id);
                    }
                }
            } catch (error) {
                console.error('å¤„ç†æ¶ˆæ¯æ—¶å‘ç”Ÿé”™è¯¯:', error);
            }
        }
    }
    
    async handlePaymentResult(messageData) {
        const eventType = messageData.event_type;
        
        if (eventType === 'payment_status_changed') {
            const merchantOrderId = messageData.merchant_order_id;
            const newStatus = messageData.new_status;
            
            console.log(`è®¢å• ${merchantOrderId} çŠ¶æ€å˜æ›´ä¸º: ${newStatus}`);
            
            if (newStatus === 'succeeded') {
                await this.handlePaymentSuccess(messageData);
            } else if (newStatus === 'failed') {
                await this.handlePaymentFailure(messageData);
            }
        }
    }
    
    async handlePaymentSuccess(messageData) {
        const merchantOrderId = messageData.merchant_order_id;
        const amount = parseInt(messageData.amount);
        
        // åœ¨è¿™é‡Œå®ç°æ‚¨çš„ä¸šåŠ¡é€»è¾‘
        console.log(`æ”¯ä»˜æˆåŠŸå¤„ç†: è®¢å•${merchantOrderId}, é‡‘é¢${amount}åˆ†`);
    }
    
    async handlePaymentFailure(messageData) {
        const merchantOrderId = messageData.merchant_order_id;
        
        // åœ¨è¿™é‡Œå®ç°æ‚¨çš„ä¸šåŠ¡é€»è¾‘
        console.log(`æ”¯ä»˜å¤±è´¥å¤„ç†: è®¢å•${merchantOrderId}`);
    }
}

// ä½¿ç”¨ç¤ºä¾‹
async function main() {
    const client = new LoomipayClient(
        'https://pay.your-domain.com',
        'your-super-secret-api-key-here',
        'your_app_identifier',
        'redis://localhost:6379/0'
    );
    
    try {
        // åˆ›å»ºæ”¯ä»˜è®¢å•
        const order = await client.createPaymentOrder(
            'ORDER_20241203_001',
            10000, // 100.00å…ƒ
            'è´ä¹°VIPä¼šå‘˜',
            'payment',
            { user_id: 'user_12345' }
        );
        console.log('åˆ›å»ºè®¢å•æˆåŠŸ:', order.id);
        
        // æŸ¥è¯¢è®¢å•çŠ¶æ€
        const orderInfo = await client.getPaymentOrder('ORDER_20241203_001');
        console.log('è®¢å•çŠ¶æ€:', orderInfo.status);
        
        // å¯åŠ¨æ¶ˆæ¯ç›‘å¬
        // await client.listenPaymentResults();
        
    } catch (error) {
        console.error('æ“ä½œå¤±è´¥:', error.message);
    }
}

// main();
